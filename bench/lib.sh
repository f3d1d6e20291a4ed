# bench/lib.sh: helpers the bench scripts share. Source it after setting
# BENCH_NAME (the prefix of messages), repo_root and GO; need_mkmirror sets
# MKMIRROR, scratch sets work and pids.

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

# freeport: a TCP port on 127.0.0.1 that is free when asked.
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# scratch NAME: makes BENCH_DIR (and makes it absolute) and work, a fresh
# directory BENCH_DIR/NAME.XXXXXX, and sets pids, the servers to stop.
scratch() {
	mkdir -p "$BENCH_DIR"
	BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
	work=$(mktemp -d "$BENCH_DIR/$1.XXXXXX")
	pids=()
}

# remove_scratch, the EXIT trap of a script that needs no other clean-up:
# stops the servers in pids and removes work, unless KEEP=1.
remove_scratch() {
	local rc=$?
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [[ ${KEEP:-0} == 1 ]]; then
		log "kept $work"
	else
		chmod -R u+w "$work" 2>/dev/null || true
		rm -rf "$work"
	fi
	exit $rc
}

# ---- serving every file by path (bench/serve.sh, bench/nocopy-serve.sh) --
# lists and fetch use CLIENTS (curl processes at once) and dir (their
# scratch directory).

# lists TREE DIR BASE...: every regular file below TREE that this user can
# read, sorted by path, dealt round-robin to CLIENTS lists; for each BASE
# (NAME=URL) DIR/NAME.K is client K's curl config, one url line per file,
# its path percent-encoded byte by byte. DIR/want.K holds the sizes client
# K will receive, DIR/want.K.sha the SHA-256 of its bodies end to end
# (reading every file, which warms the page cache). Prints "FILES BYTES".
lists() {
	python3 - "$CLIENTS" "$@" <<'EOF'
import hashlib, os, stat, sys, urllib.parse

clients, tree, out = int(sys.argv[1]), os.fsencode(sys.argv[2]), sys.argv[3]
bases = [b.split("=", 1) for b in sys.argv[4:]]
files = []
for d, _, names in os.walk(tree):
    for n in names:
        p = os.path.join(d, n)
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode) and os.access(p, os.R_OK):
            files.append((os.path.relpath(p, tree), st.st_size))
files.sort()
total = 0
for k in range(clients):
    mine = files[k::clients]
    h = hashlib.sha256()
    for rel, _ in mine:
        with open(os.path.join(tree, rel), "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                total += len(chunk)
    with open(f"{out}/want.{k}.sha", "w") as f:
        print(h.hexdigest(), file=f)
    with open(f"{out}/want.{k}", "w") as f:
        f.writelines(f"{size}\n" for _, size in mine)
    for name, url in bases:
        with open(f"{out}/{name}.{k}", "w") as f:
            f.writelines(f'url = "{url}/{urllib.parse.quote(rel)}"\n' for rel, _ in mine)
if total != sum(size for _, size in files):
    sys.exit("the tree changed while it was read")
print(len(files), total)
EOF
}

# fetch NAME MODE: all CLIENTS curls on NAME's lists at once. MODE check
# pipes each body stream into sha256sum; MODE time sends them to /dev/null.
# Either way each response's size and the connections curl opened for it
# go to $dir/got.NAME.K, and a failed request (HTTP error, short body,
# refused connection) ends the benchmark. Sets WALL (s) and CONNS (the
# connections opened, CLIENTS if every one was kept alive throughout).
fetch() {
	local name=$1 mode=$2 k t0 ps=() rc=0
	t0=$(now)
	for ((k = 0; k < CLIENTS; k++)); do
		local args=(curl -fsS --fail-early -K "$dir/$name.$k" -w '%{stderr}%{size_download} %{num_connects}\n')
		if [[ $mode == check ]]; then
			("${args[@]}" 2>"$dir/got.$name.$k" | sha256sum | cut -d' ' -f1 >"$dir/got.$name.$k.sha") &
		else
			"${args[@]}" >/dev/null 2>"$dir/got.$name.$k" &
		fi
		ps+=($!)
	done
	for k in "${!ps[@]}"; do wait "${ps[$k]}" || rc=$?; done
	WALL=$(calc "$(now) - $t0")
	if ((rc != 0)); then
		for ((k = 0; k < CLIENTS; k++)); do grep -v '^[0-9]* [0-9]*$' "$dir/got.$name.$k" >&2 || true; done
		die "$name: a request failed (curl exit $rc)"
	fi
	for ((k = 0; k < CLIENTS; k++)); do
		cut -d' ' -f1 "$dir/got.$name.$k" | cmp -s "$dir/want.$k" - || die "$name: client $k received other sizes than the tree's files"
		[[ $mode != check ]] || cmp -s "$dir/want.$k.sha" "$dir/got.$name.$k.sha" ||
			die "$name: client $k received other bytes than the tree's files"
	done
	CONNS=$(for ((k = 0; k < CLIENTS; k++)); do cat "$dir/got.$name.$k"; done | awk '{n += $2} END {print n}')
}
