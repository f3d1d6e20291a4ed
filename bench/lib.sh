# bench/lib.sh: helpers the bench scripts share. Source it after setting
# BENCH_NAME (the prefix of messages) and, for the tree cache, MKMIRROR.

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
log() { echo "$BENCH_NAME: $(date +%T) $*" >&2; }

now() { date +%s.%N; }
# calc EXPR: floating-point arithmetic.
calc() { python3 -c "print($1)"; }
# is EXPR: 1 if the Python comparison EXPR holds, else 0 (for bash's (( ))).
is() { python3 -c "print(int($1))"; }
fmt() { printf "%.${2:-2}f" "$1"; }

fingerprint() { "$MKMIRROR" fingerprint "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["fingerprint"])'; }

# ensure_tree DIR PRODUCER...: reuse DIR if its fingerprint matches the one
# recorded when it was produced, else (re)produce it with PRODUCER DIR.tmp.
ensure_tree() {
	local dir=$1
	shift
	if [[ -d $dir && -s $dir.fingerprint ]]; then
		log "checking the cached tree $dir"
		if [[ $(fingerprint "$dir") == "$(cat "$dir.fingerprint")" ]]; then
			return 0
		fi
		log "fingerprint mismatch: regenerating $dir"
	fi
	chmod -R u+w "$dir" "$dir.tmp" 2>/dev/null || true
	rm -rf "$dir" "$dir.tmp" "$dir.fingerprint"
	"$@" "$dir.tmp" >&2
	fingerprint "$dir.tmp" >"$dir.fingerprint.tmp"
	mv "$dir.tmp" "$dir"
	mv "$dir.fingerprint.tmp" "$dir.fingerprint"
}
