#!/usr/bin/env bash
# bench/push.sh: handing a publish cycle to a kubo node. On one mkmirror
# tree, in one run: (a) `ipfs-sync push` of the cycle's delta into a kubo
# daemon that holds the previous root, against (b) `ipfs add -r` of the whole
# new tree into that daemon (what a mirror does without ipfs-sync). Wall
# time and bytes sent over the RPC API, side by side. `make bench` runs it.
#
# Environment (optional): IPFS_SYNC_BIN, IPFS_BIN, MKMIRROR, PRESET (small),
# SEED (1), MUTATE_SEED (1), BENCH_DIR (/tmp/ipfs-sync-bench), as in
# bench/run.sh; the tree is the one bench/run.sh caches.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$here")
IPFS_SYNC_BIN=${IPFS_SYNC_BIN:-$repo_root/bin/ipfs-sync}
IPFS_BIN=${IPFS_BIN:-$repo_root/bin/ipfs}
PRESET=${PRESET:-small}
SEED=${SEED:-1}
MUTATE_SEED=${MUTATE_SEED:-1}
BENCH_DIR=${BENCH_DIR:-/tmp/ipfs-sync-bench}
GO=${GO:-go}

BENCH_NAME=bench/push
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
[[ -x $IPFS_SYNC_BIN && -x $IPFS_BIN ]] || die "need IPFS_SYNC_BIN and IPFS_BIN (make build kubo)"
command -v rsync >/dev/null || die "rsync is needed"
need_mkmirror

scratch push
daemon_pid=
cleanup() {
  [[ -n $daemon_pid ]] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

tree=$BENCH_DIR/$PRESET-seed$SEED
ensure_tree "$tree" "$MKMIRROR" gen --preset "$PRESET" --seed "$SEED"

export IPFS_PATH=$work/kubo
api_port=$(freeport); gw_port=$(freeport)
"$IPFS_BIN" init --profile test,unixfs-v1-2025 >/dev/null
"$IPFS_BIN" config Addresses.API "/ip4/127.0.0.1/tcp/$api_port"
"$IPFS_BIN" config Addresses.Gateway "/ip4/127.0.0.1/tcp/$gw_port"
"$IPFS_BIN" daemon --offline >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do grep -q "Daemon is ready" "$work/daemon.log" && break; sleep 0.2; done
grep -q "Daemon is ready" "$work/daemon.log" || die "kubo daemon did not start: $(cat "$work/daemon.log")"
api=http://127.0.0.1:$api_port

src=$work/mirror
log "copying the tree"
cp -a "$tree" "$src"
repo=$work/repo
log "first sync and push (the whole tree)"
"$IPFS_SYNC_BIN" --repo "$repo" -q sync "$src" >/dev/null
old=$("$IPFS_SYNC_BIN" --repo "$repo" --json log "$src" | head -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["root"])')
t0=$(date +%s.%N)
first=$("$IPFS_SYNC_BIN" --repo "$repo" --json push "$old" --api "$api")
t1=$(date +%s.%N)

log "one publish cycle (mkmirror mutate --seed $MUTATE_SEED)"
cp -a "$src" "$work/next"
"$MKMIRROR" mutate --seed "$MUTATE_SEED" "$work/next" >/dev/null
rsync -a --delete "$work/next/" "$src/"
rm -rf "$work/next"
"$IPFS_SYNC_BIN" --repo "$repo" -q sync "$src" >/dev/null
new=$("$IPFS_SYNC_BIN" --repo "$repo" --json log "$src" | head -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["root"])')
t2=$(date +%s.%N)
delta=$("$IPFS_SYNC_BIN" --repo "$repo" --json push "$new" --api "$api")
t3=$(date +%s.%N)
"$IPFS_BIN" pin ls --type recursive | grep -q "$new" || die "new root not pinned"

log "kubo: ipfs add -r of the whole new tree through the same daemon"
tree_bytes=$(find "$src" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
t4=$(date +%s.%N)
added=$("$IPFS_BIN" add -r -H -Q --raw-leaves=false --preserve-mode --preserve-mtime "$src")
t5=$(date +%s.%N)
[[ $added == "$new" ]] || die "kubo's root $added differs from ipfs-sync's $new"

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
secs() { python3 -c "print(f'{$2-$1:.2f}')"; }
mb() { python3 -c "print(f'{$1/1e6:.1f}')"; }
push_full_s=$(secs "$t0" "$t1"); push_delta_s=$(secs "$t2" "$t3"); add_s=$(secs "$t4" "$t5")
cat <<EOT

## Handing a publish cycle to kubo: mkmirror --preset $PRESET --seed $SEED, mutate --seed $MUTATE_SEED

- kubo $("$IPFS_BIN" version --number) daemon (--offline, loopback API); roots equal: $new
- bytes sent: the CAR streamed into /api/v0/dag/import (ipfs-sync), the files uploaded to /api/v0/add (kubo)

| step | wall s | MB sent | blocks sent |
|---|---:|---:|---:|
| ipfs-sync push, first (whole tree) | $push_full_s | $(mb "$(field "$first" bytes_sent)") | $(field "$first" blocks_sent) |
| ipfs-sync push, one publish cycle (delta + pin/update) | $push_delta_s | $(mb "$(field "$delta" bytes_sent)") | $(field "$delta" blocks_sent) |
| kubo \`ipfs add -r\` of the whole new tree | $add_s | $(mb "$tree_bytes") | |

Delta push vs re-adding the tree: $(python3 -c "print(f'{$add_s/max($push_delta_s,0.001):.0f}x faster, {$tree_bytes/max($(field "$delta" bytes_sent),1):.0f}x fewer bytes')")
EOT
