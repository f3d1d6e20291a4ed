# bench/lib.sh: helpers the bench scripts share. Source it after setting
# BENCH_NAME (the prefix of messages), repo_root and GO; need_mkmirror sets
# MKMIRROR.

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
log() { echo "$BENCH_NAME: $(date +%T) $*" >&2; }

now() { date +%s.%N; }
# calc EXPR: floating-point arithmetic.
calc() { python3 -c "print($1)"; }
# is EXPR: 1 if the Python comparison EXPR holds, else 0 (for bash's (( ))).
is() { python3 -c "print(int($1))"; }
fmt() { printf "%.${2:-2}f" "$1"; }

# need_mkmirror: the tree generator. MKMIRROR if set (`make bench` passes
# the one it built), else built from this checkout into bin/mkmirror.
need_mkmirror() {
	if [[ -n ${MKMIRROR:-} ]]; then
		[[ -x $MKMIRROR ]] || die "MKMIRROR=$MKMIRROR is not an executable"
		return 0
	fi
	MKMIRROR=$repo_root/bin/mkmirror
	(cd "$repo_root" && "$GO" build -o "$MKMIRROR" ./internal/mirrorgen/cmd/mkmirror) ||
		die "cannot build mkmirror (go build ./internal/mirrorgen/cmd/mkmirror)"
}

# tree_id DIR: the generator's version and the tree's fingerprint; a cached
# tree is reused only if both are what they were when it was made.
tree_id() { echo "$("$MKMIRROR" version) $("$MKMIRROR" fingerprint "$1")"; }

# ensure_tree DIR PRODUCER...: reuse DIR if its tree_id matches the one
# recorded when it was produced, else (re)produce it with PRODUCER DIR.tmp.
ensure_tree() {
	local dir=$1
	shift
	if [[ -d $dir && -s $dir.fingerprint ]]; then
		log "checking the cached tree $dir"
		if [[ $(tree_id "$dir") == "$(cat "$dir.fingerprint")" ]]; then
			return 0
		fi
		log "another tree or another generator: regenerating $dir"
	fi
	chmod -R u+w "$dir" "$dir.tmp" 2>/dev/null || true
	rm -rf "$dir" "$dir.tmp" "$dir.fingerprint"
	"$@" "$dir.tmp" >&2
	tree_id "$dir.tmp" >"$dir.fingerprint.tmp"
	mv "$dir.tmp" "$dir"
	mv "$dir.fingerprint.tmp" "$dir.fingerprint"
}
