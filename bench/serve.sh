#!/usr/bin/env bash
# bench/serve.sh: every regular file of a mirror fetched by path on loopback,
# from `ipfs-sync serve --browse` (a repository the tree was synced into,
# /ipfs/ROOT/PATH) and from nginx serving the tree itself (/PATH), with the
# same client: CLIENTS curl processes in parallel, each fetching every
# CLIENTS-th path of the sorted list one after another on one keep-alive
# connection (curl -fsS --fail-early -K LIST, bodies to /dev/null). One curl
# per file would time process start-up, not the servers. `make bench` runs
# it on the small preset; it also works when run directly from any
# directory.
#
# Environment (all optional):
#   IPFS_SYNC_BIN  ipfs-sync binary  (default: <repo>/bin/ipfs-sync; `make build`)
#   MKMIRROR       tree generator    (default: built into <repo>/bin/mkmirror)
#   PRESET         mkmirror preset   (default: small)
#   SEED           mkmirror seed     (default: 1)
#   REAL           a real mirror's path: benchmarked the same way after the
#                  generated tree (its copy in a repository needs as much disk)
#   BENCH_DIR      cache of trees and scratch space (default: /tmp/ipfs-sync-bench;
#                  the same trees as bench/run.sh's)
#   RUNS           timed runs of each server, interleaved; the best wall time is
#                  kept (default: 3)
#   CLIENTS        parallel curl processes (default: 4)
#   NGINX          nginx binary      (default: nginx on PATH, else /usr/sbin/nginx)
#   KEEP           1 keeps the scratch directory (default: 0)
#
# Both servers are first read through once, untimed: every byte each one
# sends is checked against the tree (SHA-256 of each client's stream, the
# size of every response), and that pass leaves the tree (nginx) and the
# repository's packs (serve) in the page cache. Every timed run must then
# move every byte again. serve runs under GNU time for its peak RSS over
# all of it. nginx runs as Debian configures it (a worker per core,
# sendfile, tcp_nopush) with no access log and keep-alive connections
# unlimited in requests, as serve's are.
#
# MB is 10^6 bytes, MiB 2^20. Throughput is the fetched files' bytes over
# wall time.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$here")
IPFS_SYNC_BIN=${IPFS_SYNC_BIN:-$repo_root/bin/ipfs-sync}
PRESET=${PRESET:-small}
SEED=${SEED:-1}
REAL=${REAL:-}
BENCH_DIR=${BENCH_DIR:-/tmp/ipfs-sync-bench}
RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-4}
KEEP=${KEEP:-0}
GO=${GO:-go}
TIME=/usr/bin/time

BENCH_NAME=bench/serve
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

# ---- preconditions --------------------------------------------------------
[[ -x $IPFS_SYNC_BIN ]] || die "no ipfs-sync at $IPFS_SYNC_BIN (run 'make build' or set IPFS_SYNC_BIN)"
"$TIME" -f %M true >/dev/null 2>&1 || die "$TIME is not GNU time (apt-get install -y time)"
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[[ -x $NGINX ]] || die "nginx is needed (apt-get install -y nginx, or set NGINX)"
for tool in curl python3; do
	command -v "$tool" >/dev/null || die "$tool is needed (apt-get install -y curl python3)"
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ $CLIENTS =~ ^[1-9][0-9]*$ ]] || die "CLIENTS must be a positive integer"
[[ -z $REAL || -d $REAL ]] || die "REAL=$REAL is not a directory"
case $PRESET in tiny | small | medium | large) ;; *) die "unknown PRESET $PRESET" ;; esac
need_mkmirror
IPFS_SYNC_BIN=$(cd "$(dirname "$IPFS_SYNC_BIN")" && pwd)/$(basename "$IPFS_SYNC_BIN")

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
work=$(mktemp -d "$BENCH_DIR/serve.XXXXXX")
pids=() # servers still running: stopped on any exit
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

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_http URL PID: until something answers HTTP at URL; 1 if PID exits
# or 10 s pass first.
wait_http() {
	for _ in $(seq 200); do
		curl -s -o /dev/null "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
forget() { # forget PID: a server stopped on purpose
	local p keep=()
	for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	pids=("${keep[@]}")
}

# ---- the file list and the clients: lists and fetch (bench/lib.sh) -------

# bench ID TREE LABEL: the whole comparison on TREE, in $work/ID (and ID
# in the log); prints its report.
bench() {
	local id=$1 tree=$2 label=$3
	dir=$work/$id
	mkdir -p "$dir"

	local tree_kb avail_kb
	tree_kb=$(du -sk "$tree" | cut -f1)
	avail_kb=$(df -Pk "$work" | awk 'NR==2 {print $4}')
	((avail_kb > tree_kb + 1048576)) ||
		die "$work has $((avail_kb / 1048576)) GiB free; the repository needs about $((tree_kb / 1048576 + 1)) GiB"

	log "$id: syncing $tree into a repository"
	local root
	root=$("$IPFS_SYNC_BIN" --repo "$dir/repo" -q sync "$tree") || die "ipfs-sync sync $tree failed"

	log "$id: starting ipfs-sync serve --browse (under GNU time) and nginx"
	"$TIME" -f %M -o "$dir/serve.rss" "$IPFS_SYNC_BIN" --repo "$dir/repo" serve --browse --listen 127.0.0.1:0 2>"$dir/serve.log" &
	local tpid=$! spid="" addr=""
	pids+=("$tpid")
	for _ in $(seq 200); do
		addr=$(sed -n 's|^serving .* on http://\([^/]*\)/ipfs/$|\1|p' "$dir/serve.log")
		[[ -n $addr ]] && break
		kill -0 "$tpid" 2>/dev/null || { cat "$dir/serve.log" >&2; die "ipfs-sync serve exited"; }
		sleep 0.05
	done
	[[ -n $addr ]] || die "ipfs-sync serve did not start (see $dir/serve.log)"
	spid=$(ps -o pid= --ppid "$tpid" | tr -d ' ')
	[[ -n $spid ]] || die "cannot find ipfs-sync serve's pid under GNU time"
	pids+=("$spid")

	local nport ngx=$dir/nginx
	nport=$(freeport)
	mkdir -p "$ngx/tmp"
	{
		echo "daemon off;"
		echo "worker_processes auto;"
		echo "pid $ngx/nginx.pid;"
		echo "error_log $ngx/error.log;"
		# As root nginx would read the tree as nobody; the tree's modes are
		# a mirror's, not all world-readable.
		[[ $(id -u) != 0 ]] || echo "user root root;"
		echo "events { worker_connections 1024; }"
		echo "http {"
		echo "  access_log off;"
		echo "  sendfile on;"
		echo "  tcp_nopush on;"
		echo "  keepalive_requests 100000000;"
		echo "  default_type application/octet-stream;"
		for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $ngx/tmp/$t;"; done
		echo "  server {"
		echo "    listen 127.0.0.1:$nport;"
		echo "    root $tree;"
		echo "  }"
		echo "}"
	} >"$ngx/nginx.conf"
	"$NGINX" -p "$ngx" -e "$ngx/error.log" -c "$ngx/nginx.conf" &
	local npid=$!
	pids+=("$npid")
	wait_http "http://127.0.0.1:$nport/" "$npid" || { cat "$ngx/error.log" >&2; die "nginx did not start"; }

	log "$id: listing the files and hashing them"
	local files bytes listed
	listed=$(lists "$tree" "$dir" "serve=http://$addr/ipfs/$root" "nginx=http://127.0.0.1:$nport") || die "listing $tree failed"
	read -r files bytes <<<"$listed"
	((files > 0)) || die "$tree has no regular file this user can read"

	local load_before s
	load_before=$(cut -d' ' -f1-3 /proc/loadavg)
	for s in serve nginx; do
		log "$id: $s: every file once, every byte checked"
		fetch "$s" check
		log "$id: $s: checked in $(fmt "$WALL") s"
	done

	local -A best conns
	local i
	for ((i = 1; i <= RUNS; i++)); do
		for s in serve nginx; do
			fetch "$s" time
			log "$id: $s run $i: $(fmt "$WALL") s, $(fmt "$(calc "$bytes / $WALL / 1e6")" 0) MB/s, $CONNS connections"
			if [[ -z ${best[$s]:-} ]] || (($(is "$WALL < ${best[$s]}"))); then best[$s]=$WALL; fi
			if ((CONNS > ${conns[$s]:-0})); then conns[$s]=$CONNS; fi
		done
	done
	local load_after
	load_after=$(cut -d' ' -f1-3 /proc/loadavg)

	kill -TERM "$spid"
	wait "$tpid" || true
	forget "$spid"
	forget "$tpid"
	kill -QUIT "$npid"
	wait "$npid" || true
	forget "$npid"
	local rss_kib
	rss_kib=$(tail -n 1 "$dir/serve.rss")
	[[ $rss_kib =~ ^[0-9]+$ ]] || die "no peak RSS from GNU time (see $dir/serve.rss)"

	local serve_mbps nginx_mbps
	serve_mbps=$(calc "$bytes / ${best[serve]} / 1e6")
	nginx_mbps=$(calc "$bytes / ${best[nginx]} / 1e6")
	cat <<EOF

## serve --browse against nginx: $label

- tree: $tree ($files regular files, $(fmt "$(calc "$bytes / 1e6")" 1) MB); root $root
- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); load average before/after: $load_before / $load_after
- ipfs-sync: $IPFS_SYNC_BIN (tree at $(git -C "$repo_root" describe --always --dirty 2>/dev/null || echo "not a git checkout")); $("$NGINX" -v 2>&1 | sed 's/.*: //'); $(curl --version | head -n 1 | cut -d' ' -f1-2)
- client: $CLIENTS curl processes at once, each fetching every ${CLIENTS}th path one after another on one keep-alive connection; every byte from both servers checked once; best of $RUNS interleaved runs, warm page cache

| server | wall s | MB/s | files/s | connections | peak RSS MiB |
|---|---:|---:|---:|---:|---:|
| nginx | $(fmt "${best[nginx]}") | $(fmt "$nginx_mbps" 0) | $(fmt "$(calc "$files / ${best[nginx]}")" 0) | ${conns[nginx]} | |
| ipfs-sync \`serve --browse\` | $(fmt "${best[serve]}") | $(fmt "$serve_mbps" 0) | $(fmt "$(calc "$files / ${best[serve]}")" 0) | ${conns[serve]} | $(fmt "$(calc "$rss_kib / 1024")" 0) |

serve / nginx throughput: $(fmt "$(calc "$serve_mbps / $nginx_mbps")" 2)×
EOF
}

# ---- the trees ------------------------------------------------------------
SRC=$BENCH_DIR/$PRESET-seed$SEED
ensure_tree "$SRC" "$MKMIRROR" gen --preset "$PRESET" --seed "$SEED"
bench generated "$SRC" "mkmirror --preset $PRESET --seed $SEED ($("$MKMIRROR" version))"
if [[ -n $REAL ]]; then
	bench real "$(cd "$REAL" && pwd)" "real tree $REAL"
fi
