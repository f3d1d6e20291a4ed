#!/usr/bin/env bash
# bench/cluster.sh: handing a publish cycle to a three-peer IPFS Cluster. On
# one mkmirror tree, in one run, from the same state (the previous root
# PINNED on every peer as "mirror", its blocks imported into each kubo from
# a CAR beforehand): (a) kubo's way, `ipfs add -r` of the whole new tree
# on one peer's kubo and `ipfs-cluster-ctl pin add --wait` of its root, then
# (after unpinning it and a repo GC on every peer, which leaves the previous
# root alone) (b) `ipfs-sync push NEW --cluster` (the delta CAR into one
# peer, pin-update, wait). Both count until the root is PINNED on all three
# peers; bytes on the wire are what the client sent (a counting proxy in
# front of the kubo RPC API, or the cluster's REST API). `make bench` runs it.
#
# Environment (optional): IPFS_SYNC_BIN, IPFS_BIN, IPFS_CLUSTER_SERVICE_BIN,
# IPFS_CLUSTER_CTL_BIN, MKMIRROR, PRESET (small), SEED (1), MUTATE_SEED (1),
# BENCH_DIR (/tmp/ipfs-sync-bench), as in bench/run.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$here")
IPFS_SYNC_BIN=${IPFS_SYNC_BIN:-$repo_root/bin/ipfs-sync}
IPFS_BIN=${IPFS_BIN:-$repo_root/bin/ipfs}
IPFS_CLUSTER_SERVICE_BIN=${IPFS_CLUSTER_SERVICE_BIN:-$repo_root/bin/ipfs-cluster-service}
IPFS_CLUSTER_CTL_BIN=${IPFS_CLUSTER_CTL_BIN:-$repo_root/bin/ipfs-cluster-ctl}
PRESET=${PRESET:-small}
SEED=${SEED:-1}
MUTATE_SEED=${MUTATE_SEED:-1}
BENCH_DIR=${BENCH_DIR:-/tmp/ipfs-sync-bench}
GO=${GO:-go}
PEERS=3

BENCH_NAME=bench/cluster
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
for b in "$IPFS_SYNC_BIN" "$IPFS_BIN" "$IPFS_CLUSTER_SERVICE_BIN" "$IPFS_CLUSTER_CTL_BIN"; do
  [[ -x $b ]] || die "$b missing (make build kubo cluster)"
done
need_mkmirror

scratch cluster
cleanup() {
  # Cluster peers first (they talk to the kubos), then kubos and proxies.
  local p
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    p=${pids[i]}
    kill -INT "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

tree=$BENCH_DIR/$PRESET-seed$SEED
ensure_tree "$tree" "$MKMIRROR" gen --preset "$PRESET" --seed "$SEED"

wait_log() { # FILE TEXT WHAT
  for _ in $(seq 600); do grep -q "$2" "$1" && return 0; sleep 0.2; done
  die "$3 did not start: $(tail -20 "$1")"
}

# proxy LISTEN_PORT TARGET_PORT COUNT_FILE: a TCP relay on loopback that
# keeps in COUNT_FILE the bytes its clients have sent.
proxy() {
  python3 - "$@" <<'EOF' &
import socket, sys, threading
lport, tport, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
total, lock = 0, threading.Lock()
def pipe(a, b, count):
    global total
    try:
        while True:
            d = a.recv(1 << 16)
            if not d:
                break
            b.sendall(d)
            if count:
                with lock:
                    total += len(d)
                    open(out, "w").write(str(total))
    except OSError:
        pass
    finally:
        try: b.shutdown(socket.SHUT_WR)
        except OSError: pass
def serve(c):
    s = socket.create_connection(("127.0.0.1", tport))
    threading.Thread(target=pipe, args=(s, c, False), daemon=True).start()
    pipe(c, s, True)
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", lport)); l.listen(64)
open(out, "w").write("0")
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
  pids+=($!)
}
sent() { cat "$1"; }

log "starting $PEERS kubo daemons (online, peered with each other, no routing)"
declare -a kapi kswarm kid
for i in $(seq 0 $((PEERS - 1))); do
  k=$work/kubo$i
  IPFS_PATH=$k "$IPFS_BIN" init --profile test,pebbleds,unixfs-v1-2025 >/dev/null
  kapi[i]=$(freeport); kswarm[i]=/ip4/127.0.0.1/tcp/$(freeport)
  kid[i]=$(IPFS_PATH=$k "$IPFS_BIN" config Identity.PeerID)
  IPFS_PATH=$k "$IPFS_BIN" config Addresses.API "/ip4/127.0.0.1/tcp/${kapi[i]}"
  IPFS_PATH=$k "$IPFS_BIN" config Addresses.Gateway "/ip4/127.0.0.1/tcp/$(freeport)"
  IPFS_PATH=$k "$IPFS_BIN" config --json Addresses.Swarm "[\"${kswarm[i]}\"]"
  IPFS_PATH=$k "$IPFS_BIN" config Routing.Type none
done
for i in $(seq 0 $((PEERS - 1))); do
  peering=$(for j in $(seq 0 $((PEERS - 1))); do if [[ $j != "$i" ]]; then echo "${kid[j]} ${kswarm[j]}"; fi; done |
    python3 -c 'import json,sys; print(json.dumps([{"ID": l.split()[0], "Addrs": [l.split()[1]]} for l in sys.stdin]))')
  IPFS_PATH=$work/kubo$i "$IPFS_BIN" config --json Peering.Peers "$peering"
  IPFS_PATH=$work/kubo$i "$IPFS_BIN" daemon >"$work/kubo$i.log" 2>&1 &
  pids+=($!)
done
for i in $(seq 0 $((PEERS - 1))); do wait_log "$work/kubo$i.log" "Daemon is ready" "kubo $i"; done

log "starting $PEERS cluster peers (crdt, one secret, bootstrapped to the first)"
secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
declare -a rest cswarm
for i in $(seq 0 $((PEERS - 1))); do
  d=$work/cluster$i
  "$IPFS_CLUSTER_SERVICE_BIN" --config "$d" init --consensus crdt >/dev/null 2>&1
  cid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$d/identity.json")
  rest[i]=$(freeport); cswarm[i]=/ip4/127.0.0.1/tcp/$(freeport)/p2p/$cid
done
for i in $(seq 0 $((PEERS - 1))); do
  d=$work/cluster$i
  others=$(for j in $(seq 0 $((PEERS - 1))); do if [[ $j != "$i" ]]; then echo "${cswarm[j]}"; fi; done | paste -sd,)
  python3 - "$d/service.json" "$secret" "${cswarm[i]%/p2p/*}" "$others" "${rest[i]}" "$(freeport)" "${kapi[i]}" "peer$i" <<'EOF'
import json, sys
path, secret, listen, others, rest, pinsvc, kapi, name = sys.argv[1:]
c = json.load(open(path))
cl = c["cluster"]
cl.update(peername=name, secret=secret, listen_multiaddress=[listen], mdns_interval="0s",
          monitor_ping_interval="2s", peer_watch_interval="1s",
          peer_addresses=[o for o in others.split(",") if o])
c["consensus"]["crdt"]["trusted_peers"] = ["*"]
c["api"]["restapi"]["http_listen_multiaddress"] = "/ip4/127.0.0.1/tcp/" + rest
c["api"]["pinsvcapi"]["http_listen_multiaddress"] = "/ip4/127.0.0.1/tcp/" + pinsvc
del c["api"]["ipfsproxy"]
c["ipfs_connector"]["ipfshttp"]["node_multiaddress"] = "/ip4/127.0.0.1/tcp/" + kapi
for inf in ("disk", "pinqueue", "tags"):
    c["informer"][inf]["metric_ttl"] = "5s"
c["monitor"]["pubsubmon"]["check_interval"] = "2s"
json.dump(c, open(path, "w"), indent=2)
EOF
  boot=()
  if [[ $i != 0 ]]; then boot=(--bootstrap "${cswarm[0]}"); fi
  "$IPFS_CLUSTER_SERVICE_BIN" --config "$d" daemon "${boot[@]}" >"$work/cluster$i.log" 2>&1 &
  pids+=($!)
  wait_log "$work/cluster$i.log" "IPFS Cluster is READY" "cluster peer $i"
done
ctl() { "$IPFS_CLUSTER_CTL_BIN" --host "/ip4/127.0.0.1/tcp/${rest[0]}" "$@"; }
for _ in $(seq 300); do
  n=$(ctl --enc json health metrics freespace 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0)
  [[ $n == "$PEERS" ]] && break
  sleep 0.5
done
[[ $n == "$PEERS" ]] || die "the cluster has metrics from $n of $PEERS peers"

rest_proxy=$(freeport); kubo_proxy=$(freeport)
proxy "$rest_proxy" "${rest[0]}" "$work/rest.sent"
proxy "$kubo_proxy" "${kapi[0]}" "$work/kubo.sent"
for _ in $(seq 50); do [[ -s $work/rest.sent && -s $work/kubo.sent ]] && break; sleep 0.1; done
cluster_url=http://127.0.0.1:$rest_proxy

src=$work/mirror
log "copying the tree; first sync; its CAR imported into every peer's kubo and pinned as \"mirror\" on all $PEERS"
cp -a "$tree" "$src"
repo=$work/repo
old=$("$IPFS_SYNC_BIN" --repo "$repo" -q sync --name mirror "$src")
# The starting state is set up without bitswap: the measured steps move
# only what a publish cycle changed.
"$IPFS_SYNC_BIN" --repo "$repo" export "$old" --car "$work/full.car"
for i in $(seq 0 $((PEERS - 1))); do
  IPFS_PATH=$work/kubo$i "$IPFS_BIN" dag import --pin-roots=false "$work/full.car" >/dev/null
done
rm "$work/full.car"
ctl pin add --rmin $PEERS --rmax $PEERS --name mirror --wait --wait-timeout 1h "$old" >/dev/null

log "one publish cycle (mkmirror mutate --seed $MUTATE_SEED) and its sync"
cp -a "$src" "$work/next"
"$MKMIRROR" mutate --seed "$MUTATE_SEED" "$work/next" >/dev/null
rsync -a --delete "$work/next/" "$src/"
rm -rf "$work/next"
t0=$(now)
new=$("$IPFS_SYNC_BIN" --repo "$repo" -q sync --name mirror "$src")
t1=$(now)

pinned_on() { # CID: peers on which it is PINNED
  ctl --enc json status "$1" | python3 -c 'import json,sys; print(sum(p["status"] == "pinned" for p in json.load(sys.stdin)["peer_map"].values()))'
}

log "kubo: ipfs add -r on peer 0 through its RPC API, then ipfs-cluster-ctl pin add --wait"
b0=$(sent "$work/kubo.sent")
t2=$(now)
added=$(IPFS_PATH=$work/kubo0 "$IPFS_BIN" --api "/ip4/127.0.0.1/tcp/$kubo_proxy" add -r -H -Q --pin=false \
  --raw-leaves=false --preserve-mode --preserve-mtime "$src")
t3=$(now)
ctl pin add --rmin $PEERS --rmax $PEERS --name kubo-add --wait --wait-timeout 1h "$added" >/dev/null
t4=$(now)
kubo_bytes=$(( $(sent "$work/kubo.sent") - b0 ))
[[ $added == "$new" ]] || die "kubo's root $added differs from ipfs-sync's $new"
[[ $(pinned_on "$new") == "$PEERS" ]] || die "kubo's root is not PINNED on $PEERS peers"

log "back to the previous state: unpin, repo GC on every peer (the previous root stays pinned)"
ctl pin rm --wait "$new" >/dev/null
ctl ipfs gc >/dev/null
for i in $(seq 0 $((PEERS - 1))); do
  if IPFS_PATH=$work/kubo$i "$IPFS_BIN" --api "/ip4/127.0.0.1/tcp/${kapi[i]}" block stat --offline "$new" >/dev/null 2>&1; then
    die "peer $i still holds $new after the GC"
  fi
done

log "ipfs-sync: push --cluster (delta CAR, pin-update, wait until PINNED on all $PEERS)"
b1=$(sent "$work/rest.sent")
t5=$(now)
out=$("$IPFS_SYNC_BIN" --repo "$repo" --json push "$new" --name mirror --cluster "$cluster_url" \
  --replication-min $PEERS --replication-max $PEERS --wait-timeout 1h)
t6=$(now)
sync_bytes=$(( $(sent "$work/rest.sent") - b1 ))
[[ $(pinned_on "$new") == "$PEERS" ]] || die "ipfs-sync's root is not PINNED on $PEERS peers"
pin=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["cluster"]["pin"])' "$out")
[[ $pin == updated ]] || die "the pin was $pin, not moved by pin-update"
for i in $(seq 0 $((PEERS - 1))); do
  IPFS_PATH=$work/kubo$i "$IPFS_BIN" --api "/ip4/127.0.0.1/tcp/${kapi[i]}" dag stat --offline "$new" >/dev/null ||
    die "peer $i lacks blocks of $new"
done
since=$work/since.car
"$IPFS_SYNC_BIN" --repo "$repo" export "$new" --since "$old" --car "$since" 2>/dev/null
since_bytes=$(stat -c %s "$since")

mb() { calc "f'{$1/1e6:.1f}'"; }
secs() { calc "f'{$2-$1:.2f}'"; }
cat <<EOT

## Handing a publish cycle to a $PEERS-peer IPFS Cluster: mkmirror --preset $PRESET --seed $SEED, mutate --seed $MUTATE_SEED

- kubo $("$IPFS_BIN" version --number), IPFS Cluster $("$IPFS_CLUSTER_SERVICE_BIN" --version | awk '{print $NF}'), $PEERS peers on loopback (crdt), replication $PEERS; roots equal: $new
- from the same state (the previous root PINNED on every peer); seconds until the new root is PINNED on all $PEERS peers
- MB on the wire: what the client sent to the kubo RPC API (kubo) or the cluster REST API (ipfs-sync), counted by a relay in front of it

| step | wall s | MB on the wire |
|---|---:|---:|
| kubo \`ipfs add -r\` on one peer | $(secs "$t2" "$t3") | $(mb "$kubo_bytes") |
| + \`ipfs-cluster-ctl pin add --wait\` | $(secs "$t3" "$t4") | |
| kubo total | $(secs "$t2" "$t4") | $(mb "$kubo_bytes") |
| ipfs-sync sync (the import, local) | $(secs "$t0" "$t1") | 0 |
| ipfs-sync push --cluster (delta CAR, pin-update, wait) | $(secs "$t5" "$t6") | $(mb "$sync_bytes") |
| ipfs-sync total | $(calc "f'{$t6-$t5+$t1-$t0:.2f}'") | $(mb "$sync_bytes") |

ipfs-sync vs kubo + ipfs-cluster-ctl: $(calc "f'{($t4-$t2)/max($t6-$t5+$t1-$t0,0.001):.1f}x faster, {$kubo_bytes/max($sync_bytes,1):.0f}x fewer bytes'"); on the wire $(calc "f'{$sync_bytes/$since_bytes:.3f}'")x export --since ($(mb "$since_bytes") MB)
EOT
