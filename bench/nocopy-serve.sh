#!/usr/bin/env bash
# bench/nocopy-serve.sh: `serve --browse` from a --nocopy repository, whose
# file leaves are read from the tree itself, against serve from a copying
# repository of the same tree, on a deterministic synthetic mirror
# (mkmirror): every regular file fetched by path on loopback by the client
# bench/serve.sh uses (CLIENTS curl processes at once, each on one
# keep-alive connection with every CLIENTS-th path; lists and fetch in
# bench/lib.sh). Every byte from both is checked once (which also warms
# the page cache: the tree for --nocopy, the packs for the copy); then
# RUNS interleaved timed runs, the best kept. `make bench` runs it.
#
# Environment (all optional):
#   IPFS_SYNC_BIN  ipfs-sync binary  (default: <repo>/bin/ipfs-sync; `make build`)
#   MKMIRROR       tree generator    (default: built into <repo>/bin/mkmirror)
#   PRESET         mkmirror preset   (default: small)
#   SEED           mkmirror seed     (default: 1)
#   BENCH_DIR      cache of trees and scratch space (default: /tmp/ipfs-sync-bench;
#                  the same trees as bench/run.sh's)
#   RUNS           timed runs of each, interleaved; the best is kept (default: 3)
#   CLIENTS        parallel curl processes (default: 4)
#   KEEP           1 keeps the scratch directory (default: 0)
#
# On a machine shared with other work the times are noisy: compare the
# ratio of one run, which interleaves the two repositories.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$here")
IPFS_SYNC_BIN=${IPFS_SYNC_BIN:-$repo_root/bin/ipfs-sync}
PRESET=${PRESET:-small}
SEED=${SEED:-1}
BENCH_DIR=${BENCH_DIR:-/tmp/ipfs-sync-bench}
RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-4}
KEEP=${KEEP:-0}
GO=${GO:-go}

BENCH_NAME=bench/nocopy-serve
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

[[ -x $IPFS_SYNC_BIN ]] || die "no ipfs-sync at $IPFS_SYNC_BIN (run 'make build' or set IPFS_SYNC_BIN)"
for tool in curl python3; do
	command -v "$tool" >/dev/null || die "$tool is needed (apt-get install -y curl python3)"
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ $CLIENTS =~ ^[1-9][0-9]*$ ]] || die "CLIENTS must be a positive integer"
case $PRESET in tiny | small | medium | large) ;; *) die "unknown PRESET $PRESET" ;; esac
need_mkmirror
IPFS_SYNC_BIN=$(cd "$(dirname "$IPFS_SYNC_BIN")" && pwd)/$(basename "$IPFS_SYNC_BIN")

scratch nocopy-serve
dir=$work # lists' and fetch's scratch
trap remove_scratch EXIT
trap 'exit 130' INT TERM

tree=$BENCH_DIR/$PRESET-seed$SEED
ensure_tree "$tree" "$MKMIRROR" gen --preset "$PRESET" --seed "$SEED"

declare -A flag=([copy]=--nocopy=false [nocopy]=--nocopy) addr
repos=(copy nocopy)
for r in "${repos[@]}"; do
	log "syncing $tree into a repository with ${flag[$r]}"
	root=$("$IPFS_SYNC_BIN" --repo "$work/repo-$r" -q sync "${flag[$r]}" "$tree") || die "sync ${flag[$r]} failed"
	printf -v "root_$r" %s "$root"
	"$IPFS_SYNC_BIN" --repo "$work/repo-$r" serve --browse --listen 127.0.0.1:0 2>"$work/serve-$r.log" &
	pids+=($!)
	for _ in $(seq 200); do
		addr[$r]=$(sed -n 's|^serving .* on http://\([^/]*\)/ipfs/$|\1|p' "$work/serve-$r.log")
		[[ -n ${addr[$r]} ]] && break
		kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/serve-$r.log" >&2; die "ipfs-sync serve exited"; }
		sleep 0.05
	done
	[[ -n ${addr[$r]} ]] || die "ipfs-sync serve did not start (see $work/serve-$r.log)"
done
# shellcheck disable=SC2154 # set by printf -v
[[ $root_copy == "$root_nocopy" ]] || die "roots differ: copying $root_copy, --nocopy $root_nocopy"

log "listing the files and hashing them"
listed=$(lists "$tree" "$work" "copy=http://${addr[copy]}/ipfs/$root" "nocopy=http://${addr[nocopy]}/ipfs/$root") || die "listing $tree failed"
read -r files bytes <<<"$listed"
((files > 0)) || die "$tree has no regular file this user can read"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for r in "${repos[@]}"; do
	log "$r: every file once, every byte checked"
	fetch "$r" check
	log "$r: checked in $(fmt "$WALL") s"
done
declare -A best
for ((i = 1; i <= RUNS; i++)); do
	for r in "${repos[@]}"; do
		fetch "$r" time
		log "$r run $i: $(fmt "$WALL") s, $(fmt "$(calc "$bytes / $WALL / 1e6")" 0) MB/s, $CONNS connections"
		if [[ -z ${best[$r]:-} ]] || (($(is "$WALL < ${best[$r]}"))); then best[$r]=$WALL; fi
	done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

cat <<EOF

## serve --browse from a --nocopy repository against a copying one: $PRESET preset

- tree: mkmirror --preset $PRESET --seed $SEED ($("$MKMIRROR" version)), $files regular files, $(fmt "$(calc "$bytes / 1e6")" 1) MB; root $root
- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); load average before/after: $load_before / $load_after; ipfs-sync at $(git -C "$repo_root" describe --always --dirty 2>/dev/null || echo "not a git checkout")
- client: $CLIENTS curl processes at once, each fetching every ${CLIENTS}th path on one keep-alive connection; every byte checked once; best of $RUNS interleaved runs, warm page cache

| repository | wall s | MB/s | files/s |
|---|---:|---:|---:|
| copying | $(fmt "${best[copy]}") | $(fmt "$(calc "$bytes / ${best[copy]} / 1e6")" 0) | $(fmt "$(calc "$files / ${best[copy]}")" 0) |
| \`--nocopy\` | $(fmt "${best[nocopy]}") | $(fmt "$(calc "$bytes / ${best[nocopy]} / 1e6")" 0) | $(fmt "$(calc "$files / ${best[nocopy]}")" 0) |

--nocopy / copying time: $(fmt "$(calc "${best[nocopy]} / ${best[copy]}")" 2)×
EOF
