#!/usr/bin/env bash
# bench/pull.sh: one publish cycle of a synthetic mirror (mkmirror), fetched
# on loopback by three downstream mirrors:
#   (a) ipfs-sync pull from `ipfs-sync serve` (trustless gateway),
#   (b) wget --mirror from a static HTTP file server of the tree (Go's
#       http.FileServer, symlinks not followed),
#   (c) rsync from an rsync daemon (`rsync --daemon` with its own config on
#       127.0.0.1, started and stopped here; `rsync -a --delete`).
# For the first full pull (into an empty directory) and for the update
# (the mutated tree, into the same directory): wall time and bytes on the
# wire. Times are of runs connected straight to their server, best of
# RUNS; then one more run of each goes through a counting TCP proxy, so
# "wire" is every byte of the TCP payload both ways (requests, headers,
# framing, data), measured the same way for all three (the proxy's copying
# would otherwise be in the times, on the same cores). Times include a
# final sync(1): each run ends with its data on disk (ipfs-sync pull syncs
# before it records the root; the others are given the same).
#
# The update's index files (Packages*, Sources*, Contents*, Release,
# InRelease, PACKAGES*, index.json, index.html, ls-lR*, project/trace/*):
# a third tree, the first with only the update's index files applied, is
# fetched (into the full pull's result) by ipfs-sync pull and rsync through
# the proxy; its wire bytes over the update's are the index files' share.
#
# Environment (all optional):
#   IPFS_SYNC_BIN  ipfs-sync binary  (default: <repo>/bin/ipfs-sync)
#   MKMIRROR       tree generator    (default: built into <repo>/bin/mkmirror)
#   PRESET         mkmirror preset   (default: small)
#   SEED, MUTATE_SEED                (default: 1, 1)
#   BENCH_DIR      cache of trees and scratch space (default: /tmp/ipfs-sync-bench;
#                  the same trees as bench/run.sh's)
#   JOBS           ipfs-sync pull --jobs (default: its own)
#   RUNS           runs of each client per phase, the best wall time kept (default: 3)
#   KEEP           1 keeps the scratch directory (default: 0)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$here")
IPFS_SYNC_BIN=${IPFS_SYNC_BIN:-$repo_root/bin/ipfs-sync}
PRESET=${PRESET:-small}
SEED=${SEED:-1}
MUTATE_SEED=${MUTATE_SEED:-1}
BENCH_DIR=${BENCH_DIR:-/tmp/ipfs-sync-bench}
JOBS=${JOBS:-}
RUNS=${RUNS:-3}
KEEP=${KEEP:-0}
GO=${GO:-go}

BENCH_NAME=bench/pull
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

[[ -x $IPFS_SYNC_BIN ]] || die "no ipfs-sync at $IPFS_SYNC_BIN (run 'make build' or set IPFS_SYNC_BIN)"
for tool in wget rsync python3 "$GO"; do
	command -v "$tool" >/dev/null || die "$tool is needed (apt-get install -y wget rsync)"
done
need_mkmirror
IPFS_SYNC_BIN=$(cd "$(dirname "$IPFS_SYNC_BIN")" && pwd)/$(basename "$IPFS_SYNC_BIN")

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
work=$(mktemp -d "$BENCH_DIR/pull.XXXXXX")
pids=()
cleanup() {
	local rc=$?
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [[ $KEEP == 1 ]]; then
		log "kept $work"
	else
		chmod -R u+w "$work" 2>/dev/null || true
		rm -rf "$work"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the trees (cached and fingerprinted: ensure_tree in bench/lib.sh) ----
V1=$BENCH_DIR/$PRESET-seed$SEED
V2=$V1.mut$MUTATE_SEED
log "trees: $V1 and $V2"
ensure_tree "$V1" "$MKMIRROR" gen --preset "$PRESET" --seed "$SEED"
mutated() { cp -a "$V1" "$1" && "$MKMIRROR" mutate --seed "$MUTATE_SEED" "$1"; }
ensure_tree "$V2" mutated

# ---- a file server and a counting proxy (Go, standard library only) ------
mkdir -p "$work/tool"
cat >"$work/tool/go.mod" <<'EOF'
module benchtool

go 1.22
EOF
cat >"$work/tool/main.go" <<'EOF'
// benchtool fileserver DIR ADDR: Go's http.FileServer over DIR, refusing
// symlinks below DIR (a mirror's "debian -> ." would loop forever), and
// sending no Last-Modified for directory listings, as nginx's and Apache's
// autoindex do: wget --mirror skips the whole subtree of a listing that
// answers 304, so with them it would miss changes below unchanged
// directories.
// benchtool proxy LISTEN TARGET: forwards TCP, counts the bytes each way,
// prints "UP DOWN" on SIGTERM once the connections are done.
package main

import (
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type noLinks string

func (d noLinks) Open(name string) (http.File, error) {
	p := string(d)
	for _, part := range strings.Split(strings.TrimPrefix(path.Clean("/"+name), "/"), "/") {
		if part == "" {
			continue
		}
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fs.ErrNotExist
		}
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return listing{f}, nil
	}
	return f, nil
}

type listing struct{ *os.File }

func (l listing) Stat() (fs.FileInfo, error) {
	fi, err := l.File.Stat()
	if err != nil {
		return nil, err
	}
	return undated{fi}, nil
}

type undated struct{ fs.FileInfo }

func (undated) ModTime() time.Time { return time.Time{} }

func main() {
	switch os.Args[1] {
	case "fileserver":
		l, err := net.Listen("tcp", os.Args[3])
		if err != nil {
			panic(err)
		}
		fmt.Println("ready")
		panic(http.Serve(l, http.FileServer(noLinks(os.Args[2]))))
	case "proxy":
		l, err := net.Listen("tcp", os.Args[2])
		if err != nil {
			panic(err)
		}
		var up, down atomic.Int64
		var wg sync.WaitGroup
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				t, err := net.Dial("tcp", os.Args[3])
				if err != nil {
					c.Close()
					continue
				}
				wg.Add(2)
				go func() { n, _ := io.Copy(t, c); up.Add(n); t.(*net.TCPConn).CloseWrite(); wg.Done() }()
				go func() { n, _ := io.Copy(c, t); down.Add(n); c.(*net.TCPConn).CloseWrite(); wg.Done() }()
			}
		}()
		fmt.Println("ready")
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		l.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		fmt.Println(up.Load(), down.Load())
	}
}
EOF
(cd "$work/tool" && GOFLAGS= "$GO" build -o benchtool .) || die "building the file server and proxy failed"
tool=$work/tool/benchtool

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_line FILE TEXT: until FILE holds TEXT (a server's ready line).
wait_line() {
	for _ in $(seq 200); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	die "$1: no '$2'"
}

# ---- the index files of the update, applied alone to V1 ----------------
# index_re matches the path (relative) of a mirror's index file.
index_re='(^|/)(Packages[^/]*|Sources[^/]*|Contents[^/]*|Release|InRelease|PACKAGES[^/]*|index[.]json|index[.]html|ls-lR[^/]*|project/trace/[^/]+)$'
VI=$work/index-only
log "the update's index files alone: $VI"
cp -a "$V1" "$VI"
# Files of V2 that are new or whose content differs from V1's: SIZE<tab>PATH.
rsync -rlptDnc --out-format=$'%i\t%l\t%n' "$V2/" "$V1/" | awk -F'\t' -v OFS='\t' '$1 ~ /^>f/ {print $2, $3}' >"$work/changed"
awk -F'\t' -v re="$index_re" '$2 ~ re' "$work/changed" >"$work/changed-index"
cut -f2- "$work/changed-index" | rsync -a --files-from=- "$V2/" "$VI/"
changed_bytes=$(awk -F'\t' '{s += $1} END {print s + 0}' "$work/changed")
changed_files=$(wc -l <"$work/changed")
index_bytes=$(awk -F'\t' '{s += $1} END {print s + 0}' "$work/changed-index")
index_files=$(wc -l <"$work/changed-index")

# ---- the servers, all serving "current" (a symlink to V1, V2, VI) --------
ln -sfn "$V1" "$work/current"
log "importing the versions into an ipfs-sync repository"
repo=$work/repo
ROOT1=$("$IPFS_SYNC_BIN" --repo "$repo" -q sync --name bench "$V1")
ROOT2=$("$IPFS_SYNC_BIN" --repo "$repo" -q sync --name bench --base "$ROOT1" "$V2")
ROOTI=$("$IPFS_SYNC_BIN" --repo "$repo" -q sync --name bench-index --base "$ROOT1" "$VI")

serve_port=$(freeport)
"$IPFS_SYNC_BIN" --repo "$repo" serve --listen "127.0.0.1:$serve_port" 2>"$work/serve.log" &
pids+=($!)
wait_line "$work/serve.log" serving

http_port=$(freeport)
"$tool" fileserver "$work/current" "127.0.0.1:$http_port" >"$work/http.log" 2>&1 &
pids+=($!)
wait_line "$work/http.log" ready

rsync_port=$(freeport)
cat >"$work/rsyncd.conf" <<EOF
use chroot = no
uid = $(id -u)
gid = $(id -g)
pid file = $work/rsyncd.pid
log file = $work/rsyncd.log
[mirror]
path = $work/current
read only = yes
EOF
rsync --daemon --no-detach --address 127.0.0.1 --port "$rsync_port" --config "$work/rsyncd.conf" &
pids+=($!)
for _ in $(seq 100); do rsync "rsync://127.0.0.1:$rsync_port/" >/dev/null 2>&1 && break; sleep 0.05; done

# run NAME PORT CMD...: CMD against the server on PORT (CMD's "@SERVER@"
# becomes its host:port); sets WALL and RC. With PROXY=1 it goes through
# a fresh counting proxy in front of PORT, and sets WIRE too.
PROXY=0
run() {
	local name=$1 port=$2
	shift 2
	local addr=127.0.0.1:$port ppid=
	if [[ $PROXY == 1 ]]; then
		local pport
		pport=$(freeport)
		"$tool" proxy "127.0.0.1:$pport" "127.0.0.1:$port" >"$work/$name.proxy" &
		ppid=$!
		wait_line "$work/$name.proxy" ready
		addr=127.0.0.1:$pport
	fi
	local args=()
	for a in "$@"; do args+=("${a//@SERVER@/$addr}"); done
	sync
	local t0 rc=0
	t0=$(now)
	"${args[@]}" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
	sync
	WALL=$(calc "$(now) - $t0")
	if [[ -n $ppid ]]; then
		kill -TERM "$ppid"
		wait "$ppid" || true
		WIRE=$(tail -n 1 "$work/$name.proxy" | awk '{print $1 + $2}')
	fi
	RC=$rc
}

declare -A wall wire fetched
pull_json() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
jobs_flag=()
[[ -n $JOBS ]] && jobs_flag=(--jobs "$JOBS")

# client NAME PHASE: one run of client NAME (pull, wget, rsync) into
# $work/dest-NAME; sets WALL, RC (and WIRE through the proxy).
client() {
	local c=$1 phase=$2 root=$ROOT1
	[[ $phase == update ]] && root=$ROOT2
	[[ $phase == index ]] && root=$ROOTI
	case $c in
	pull)
		run "pull-$phase" "$serve_port" "$IPFS_SYNC_BIN" --repo "$work/pull-repo" --json pull "$root" "$work/dest-pull" --from "http://@SERVER@" "${jobs_flag[@]}"
		[[ $RC == 0 ]] || { cat "$work/pull-$phase.err" >&2; die "ipfs-sync pull failed"; }
		;;
	wget)
		run "wget-$phase" "$http_port" wget --mirror --no-host-directories --no-verbose -e robots=off -P "$work/dest-wget" "http://@SERVER@/"
		# 8: some requests failed (the symlinks, which the file server refuses).
		[[ $RC == 0 || $RC == 8 ]] || { tail "$work/wget-$phase.err" >&2; die "wget failed ($RC)"; }
		;;
	rsync)
		run "rsync-$phase" "$rsync_port" rsync -a --delete --stats "rsync://@SERVER@/mirror/" "$work/dest-rsync/"
		[[ $RC == 0 ]] || { tail "$work/rsync-$phase.err" >&2; die "rsync failed ($RC)"; }
		;;
	esac
}

# prepare CLIENT PHASE FIRST: DEST as a run of PHASE starts from: empty for
# a full pull; for an update (or the index files alone), the full pull's
# result, saved before the first such run (FIRST=1) and restored before
# each later one (with rsync, which copies back only what changed).
prepare() {
	local c=$1 phase=$2 first=$3
	if [[ $phase == full ]]; then
		chmod -R u+w "$work/dest-$c" 2>/dev/null || true
		rm -rf "$work/dest-$c"
	elif [[ $first == 1 && ! -d $work/v1-$c ]]; then
		cp -a "$work/dest-$c" "$work/v1-$c"
		# pull's state of DEST (in its repository) goes back with it.
		[[ $c == pull ]] && cp -a "$work/pull-repo" "$work/v1-pull-repo"
	else
		rsync -a --delete "$work/v1-$c/" "$work/dest-$c/"
		[[ $c == pull ]] && rsync -a --delete "$work/v1-pull-repo/" "$work/pull-repo/"
	fi
	return 0
}

# Each client runs RUNS times per phase, straight to its server, and its
# best wall time is kept (the machine may be shared); then once more
# through the counting proxy for the bytes on the wire.
for phase in full update; do
	[[ $phase == update ]] && ln -sfn "$V2" "$work/current"
	for c in pull wget rsync; do
		best=
		for i in $(seq "$RUNS"); do
			prepare "$c" "$phase" "$i"
			client "$c" "$phase"
			log "$phase: $c run $i: $(printf %.2f "$WALL") s"
			if [[ -z $best ]] || (($(is "$WALL < $best"))); then
				best=$WALL
			fi
		done
		wall[$c-$phase]=$best
		prepare "$c" "$phase" 0
		PROXY=1 client "$c" "$phase"
		PROXY=0
		wire[$c-$phase]=$WIRE
		[[ $c == pull ]] && fetched[$phase]=$(pull_json "$work/pull-$phase.out" bytes_fetched)
		log "$phase: $c through the proxy: $WIRE bytes on the wire"
	done
	want=$V1
	[[ $phase == update ]] && want=$V2
	for d in pull rsync; do
		if [[ -n $(rsync -rlptDnc --itemize-changes --delete "$want/" "$work/dest-$d/") ]]; then
			die "$phase: dest-$d differs from the tree"
		fi
	done
done

# The index files alone, through the proxy (bytes only).
ln -sfn "$VI" "$work/current"
for c in pull rsync; do
	prepare "$c" index 0
	PROXY=1 client "$c" index
	PROXY=0
	wire[$c-index]=$WIRE
	[[ $c == pull ]] && fetched[index]=$(pull_json "$work/pull-index.out" bytes_fetched)
	log "index files alone: $c: $WIRE bytes on the wire"
	if [[ -n $(rsync -rlptDnc --itemize-changes --delete "$VI/" "$work/dest-$c/") ]]; then
		die "index files alone: dest-$c differs from the tree"
	fi
done

# ---- report ---------------------------------------------------------------
files=$(find "$V1" -type f | wc -l)
bytes=$(du -sb "$V1" | cut -f1)
mib() { calc "round($1 / 1048576, 1)"; }
ratio() { calc "round($1 / $2, 2)"; }
pct() { calc "round(100 * $1 / $2)"; }
table=$(
	printf '| client | full: time | full: wire | update: time | update: wire |\n'
	printf '|---|---:|---:|---:|---:|\n'
	for c in pull wget rsync; do
		case $c in
		pull) label="ipfs-sync pull ← serve" ;;
		wget) label="wget --mirror ← http.FileServer" ;;
		rsync) label="rsync ← rsync daemon" ;;
		esac
		printf '| %s | %.2f s | %s MiB | %.2f s | %s MiB |\n' "$label" "${wall[$c-full]}" "$(mib "${wire[$c-full]}")" "${wall[$c-update]}" "$(mib "${wire[$c-update]}")"
	done
)
echo
echo "$PRESET tree (seed $SEED): $files files, $(mib "$bytes") MiB; publish cycle (mutate --seed $MUTATE_SEED): $changed_files files new or with new content, $(mib "$changed_bytes") MiB, of which $index_files index files, $(mib "$index_bytes") MiB"
echo
echo "$table"
echo
echo "- time, ipfs-sync pull over rsync: full $(ratio "${wall[pull-full]}" "${wall[rsync-full]}")×, update $(ratio "${wall[pull-update]}" "${wall[rsync-update]}")×"
echo "- ipfs-sync pull fetched $(mib "${fetched[full]}") MiB of blocks for the full pull and $(mib "${fetched[update]}") MiB for the update: $(ratio "${fetched[update]}" "$changed_bytes")× the changed bytes; on the wire $(ratio "${wire[pull-update]}" "$changed_bytes")× (rsync $(ratio "${wire[rsync-update]}" "$changed_bytes")×)"
echo "- the update's index files alone: ipfs-sync pull $(mib "${wire[pull-index]}") MiB on the wire ($(pct "${wire[pull-index]}" "${wire[pull-update]}") % of its update), rsync $(mib "${wire[rsync-index]}") MiB ($(pct "${wire[rsync-index]}" "${wire[rsync-update]}") %)"

