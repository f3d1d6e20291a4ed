#!/usr/bin/env bash
# bench/run.sh: ipfs-sync against kubo and against the machine's floor, on a
# deterministic synthetic mirror (mkmirror). `make bench` runs it; it also
# works when run directly from any directory.
#
# Environment (all optional):
#   IPFS_SYNC_BIN  ipfs-sync binary          (default: <repo>/bin/ipfs-sync; `make build`)
#   IPFS_BIN       kubo's ipfs binary         (default: <repo>/bin/ipfs; `make kubo`)
#   MKMIRROR       tree generator             (default: built into <repo>/bin/mkmirror; `make mkmirror`)
#   PRESET         mkmirror preset            (default: small; medium for the RSS-vs-size check)
#   SEED           mkmirror seed              (default: 1)
#   MUTATE_SEED    seed of the incremental publish cycle (default: 1)
#   BENCH_DIR      cache of generated trees and scratch space (default: /tmp/ipfs-sync-bench)
#   RUNS           timed runs of each importer; the best wall time is kept (default: 1)
#   INCREMENTAL    0 skips the incremental section (default: 1)
#   STORECMP       1 also runs bench/storecmp (pebble vs flatfs) on the import's CAR (default: 0)
#   STORECMP_ARGS  extra storecmp flags (default: -rounds 3 -stores pebble,flatfs,pebble-tuned)
#   KEEP           1 keeps the scratch repositories (default: 0)
#   SETTLE         seconds to let pass after the previous run's cleanup (default: 300; 0 skips)
#
# Why SETTLE: ext4's inode allocator skips inodes freed in the last 60-300 s
# (find_inode_bit -> recently_deleted), and each run removes a few hundred
# thousand files when it ends. A flatfs-backed importer (kubo, ipfs-sync)
# started within that window spends much of its time in that scan and in
# the directory lock held across it. Other processes' mass deletions on the
# same file system have the same effect; the script cannot see those.
#
# MB is 10^6 bytes, MiB 2^20. Throughput is the tree's regular-file bytes over
# wall time. Every importer runs with a warm page cache: the tree is read
# once before anything is timed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$here")
IPFS_SYNC_BIN=${IPFS_SYNC_BIN:-$repo_root/bin/ipfs-sync}
IPFS_BIN=${IPFS_BIN:-$repo_root/bin/ipfs}
PRESET=${PRESET:-small}
SEED=${SEED:-1}
MUTATE_SEED=${MUTATE_SEED:-1}
BENCH_DIR=${BENCH_DIR:-/tmp/ipfs-sync-bench}
RUNS=${RUNS:-1}
INCREMENTAL=${INCREMENTAL:-1}
STORECMP=${STORECMP:-0}
STORECMP_ARGS=${STORECMP_ARGS:--rounds 3 -stores pebble,flatfs,pebble-tuned}
KEEP=${KEEP:-0}
SETTLE=${SETTLE:-300}
GO=${GO:-go}
TIME=/usr/bin/time

BENCH_NAME=bench
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

# ---- preconditions --------------------------------------------------------
[[ -x $IPFS_SYNC_BIN ]] || die "no ipfs-sync at $IPFS_SYNC_BIN (run 'make build' or set IPFS_SYNC_BIN)"
[[ -x $IPFS_BIN ]] || die "no kubo at $IPFS_BIN (run 'make kubo' or set IPFS_BIN)"
"$TIME" -f %M true >/dev/null 2>&1 || die "$TIME is not GNU time (apt-get install -y time)"
command -v python3 >/dev/null || die "python3 is needed (the report's arithmetic)"
command -v "$GO" >/dev/null || die "go is needed to build bench/floor and mkmirror"
[[ $INCREMENTAL == 0 ]] || command -v rsync >/dev/null || die "rsync is needed for the incremental section (apt-get install -y rsync, or INCREMENTAL=0)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
case $PRESET in tiny | small | medium | large) ;; *) die "unknown PRESET $PRESET" ;; esac
need_mkmirror
IPFS_SYNC_BIN=$(cd "$(dirname "$IPFS_SYNC_BIN")" && pwd)/$(basename "$IPFS_SYNC_BIN")
IPFS_BIN=$(cd "$(dirname "$IPFS_BIN")" && pwd)/$(basename "$IPFS_BIN")

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
work=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
cleanup() {
	local rc=$?
	if [[ $KEEP == 1 ]]; then
		log "kept scratch space in $work"
	else
		chmod -R u+w "$work" 2>/dev/null || true
		rm -rf "$work"
		date +%s >"$BENCH_DIR/.cleaned"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- helpers (now, calc, is, fmt, ensure_tree: bench/lib.sh) -------------
gen_tree() { log "generating mkmirror --preset $PRESET --seed $SEED"; "$MKMIRROR" gen --preset "$PRESET" --seed "$SEED" "$1"; }
mutated_tree() {
	log "copying and mutating (mkmirror mutate --seed $MUTATE_SEED)"
	cp -a "$SRC" "$1"
	"$MKMIRROR" mutate --seed "$MUTATE_SEED" "$1"
}

# measure NAME CMD...: run CMD under GNU time after a sync(1); its stdout
# goes to $work/NAME.out. Sets WALL (s) and RSS (KiB).
measure() {
	local name=$1
	shift
	sync
	if ! "$TIME" -f '%e %M' -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err"; then
		echo "bench: $name failed: $*" >&2
		tail -n 20 "$work/$name.err" >&2
		exit 1
	fi
	read -r WALL RSS < <(tail -n 1 "$work/$name.time")
}

# best NAME RUNNER: call "RUNNER I" (which calls measure NAME.I ...) for I
# in 1..RUNS, keep the best wall time and the highest peak RSS. Sets WALL,
# RSS, BEST (the I of the best run) and OUT (the first line of its stdout).
# Each run gets fresh directories and none is removed before the end: ext4
# skips recently freed inodes when it allocates new ones, which would slow a
# flatfs-backed run after a removed one for a reason that is not the
# importer's.
best() {
	local name=$1 runner=$2
	local bw="" br=0 i
	for ((i = 1; i <= RUNS; i++)); do
		"$runner" "$i"
		log "  $name run $i: ${WALL}s, peak RSS $((RSS / 1024)) MiB"
		if [[ -z $bw ]] || (($(is "$WALL < $bw"))); then
			bw=$WALL
			BEST=$i
			OUT=$(head -n 1 "$work/$name.$i.out")
		fi
		if ((RSS > br)); then br=$RSS; fi
	done
	WALL=$bw
	RSS=$br
}

du_mib() { du -sk "$1" | awk '{printf "%.0f", $1/1024}'; }

# ---- the tree -------------------------------------------------------------
SRC=$BENCH_DIR/$PRESET-seed$SEED
ensure_tree "$SRC" gen_tree

# ---- let the previous run's deletions age out (see SETTLE above) ------------
if [[ $SETTLE != 0 && -s $BENCH_DIR/.cleaned ]]; then
	wait_s=$(($(cat "$BENCH_DIR/.cleaned") + SETTLE - $(date +%s)))
	if ((wait_s > 0)); then
		log "waiting ${wait_s}s for the previous run's freed inodes to age out (SETTLE=0 skips)"
		sleep "$wait_s"
	fi
fi

# ---- disk space -----------------------------------------------------------
tree_kb=$(du -sk "$SRC" | cut -f1)
copies=$((2 * RUNS + 2))
[[ $INCREMENTAL == 0 ]] || copies=$((copies + 3))
[[ $STORECMP != 1 ]] || copies=$((copies + 8))
avail_kb=$(df -Pk "$BENCH_DIR" | awk 'NR==2 {print $4}')
((avail_kb > tree_kb * copies)) ||
	die "$BENCH_DIR has $((avail_kb / 1048576)) GiB free; this run needs about $((tree_kb * copies / 1048576)) GiB ($copies copies of the tree)"

# ---- build the floor tool -------------------------------------------------
log "building bench/floor"
(cd "$here" && "$GO" build -o "$work/floor" ./floor) || die "cannot build bench/floor"

# ---- machine --------------------------------------------------------------
ncpu=$(nproc)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
fsinfo=$(df -PT "$BENCH_DIR" | awk 'NR==2 {print $1 " (" $2 ")"}')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
src_rev=$(git -C "$repo_root" describe --always --dirty 2>/dev/null || echo "not a git checkout")

# ---- floor ----------------------------------------------------------------
log "warming the page cache (reading every file)"
read_line=$("$work/floor" -mode read "$SRC")
read_line=$("$work/floor" -mode read "$SRC")
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
# Best of RUNS, as each importer is: the floor is not the lucky one.
log "SHA-256 of every byte on $ncpu workers (best of $RUNS)"
sha_line=
for ((i = 1; i <= RUNS; i++)); do
	line=$("$work/floor" -mode sha256 "$SRC")
	if [[ -z $sha_line ]] || (($(is "$(field seconds "$line") < $(field seconds "$sha_line")"))); then
		sha_line=$line
	fi
done
BYTES=$(field bytes "$sha_line")
FILES=$(field files "$sha_line")
read_s=$(field seconds "$read_line")
sha_s=$(field seconds "$sha_line")
sha_mbps=$(field mbps "$sha_line")

log "SHA-256 of every byte and a copy of it appended to a pack, as ipfs-sync keeps blocks"
write_line=$("$work/floor" -mode sha256-pack -dst "$work/floor-copy" "$SRC")
write_s=$(field seconds "$write_line")
write_mbps=$(field mbps "$write_line")
write_sync_s=$(field sync_seconds "$write_line")

log "stat walk (find -printf)"
entries=$(find "$SRC" -printf . | wc -c) # also warms the dentry and inode caches
t0=$(now)
find "$SRC" -printf '%p %s %T@ %m %y\n' >/dev/null
find_s=$(calc "$(now) - $t0")

# ---- kubo -----------------------------------------------------------------
KUBO_ADD=(add -r -H -Q --offline --raw-leaves=false --preserve-mode --preserve-mtime)
run_kubo() {
	local repo=$work/kubo.$1
	IPFS_PATH=$repo "$IPFS_BIN" init --profile test,unixfs-v1-2025 >"$work/kubo-init.log" 2>&1 ||
		{ cat "$work/kubo-init.log" >&2; die "ipfs init failed"; }
	measure "kubo.$1" env IPFS_PATH="$repo" "$IPFS_BIN" "${KUBO_ADD[@]}" "$SRC"
}
log "kubo: ipfs ${KUBO_ADD[*]} SRC"
best kubo run_kubo
kubo_s=$WALL kubo_rss=$RSS kubo_root=$OUT
KUBO_REPO=$work/kubo.$BEST
kubo_du=$(du_mib "$KUBO_REPO")

# ---- ipfs-sync ------------------------------------------------------------
run_sync() { measure "ipfs-sync.$1" "$IPFS_SYNC_BIN" --repo "$work/ipfs-sync.$1" -q sync "$SRC"; }
log "ipfs-sync: ipfs-sync -q sync SRC"
best ipfs-sync run_sync
sync_s=$WALL sync_rss=$RSS sync_root=$OUT
SYNC_REPO=$work/ipfs-sync.$BEST
sync_du=$(du_mib "$SYNC_REPO")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report ---------------------------------------------------------------
mb=$(calc "$BYTES / 1e6")
tput() { calc "$BYTES / $1 / 1e6"; }
kubo_mbps=$(tput "$kubo_s")
sync_mbps=$(tput "$sync_s")
vs_kubo=$(calc "$kubo_s / $sync_s")
vs_floor=$(calc "100 * $sync_mbps / $sha_mbps")
vs_write=$(calc "100 * $sync_mbps / $write_mbps")
sync_rss_mib=$(calc "$sync_rss / 1024")
kubo_rss_mib=$(calc "$kubo_rss / 1024")
roots_ok=0
[[ $kubo_root == "$sync_root" ]] && roots_ok=1

cat <<EOF

## ipfs-sync benchmark: mkmirror --preset $PRESET --seed $SEED

- tree: $SRC ($FILES files, $entries entries, $(fmt "$mb" 1) MB; $("$MKMIRROR" version))
- machine: $ncpu cores, $cpu, $mem RAM; $fsinfo
- load average before/after: $load_before / $load_after
- ipfs-sync: $IPFS_SYNC_BIN (tree at $src_rev); kubo: $("$IPFS_BIN" version 2>/dev/null || echo '?')
- best of $RUNS run(s), warm page cache

| step | wall s | MB/s | peak RSS MiB | repo on disk MiB |
|---|---:|---:|---:|---:|
| floor: stat walk (\`find -printf\`) | $(fmt "$find_s") | | | |
| floor: read every file ($ncpu workers) | $(fmt "$read_s") | $(fmt "$(tput "$read_s")" 0) | | |
| floor: SHA-256 every byte ($ncpu workers) | $(fmt "$sha_s") | $(fmt "$sha_mbps" 0) | | |
| floor: SHA-256 + append to a pack, syncfs ($ncpu workers; $(fmt "$write_sync_s") s of it syncfs) | $(fmt "$write_s") | $(fmt "$write_mbps" 0) | | |
| kubo \`ipfs add -r\` | $(fmt "$kubo_s") | $(fmt "$kubo_mbps" 0) | $(fmt "$kubo_rss_mib" 0) | $kubo_du |
| ipfs-sync \`sync\` | $(fmt "$sync_s") | $(fmt "$sync_mbps" 0) | $(fmt "$sync_rss_mib" 0) | $sync_du |

| ratio | value |
|---|---:|
| ipfs-sync / kubo throughput | $(fmt "$vs_kubo" 2)× |
| ipfs-sync / SHA-256 floor | $(fmt "$vs_floor" 0) % |
| ipfs-sync / SHA-256 + pack-write floor | $(fmt "$vs_write" 0) % |

EOF
if ((roots_ok)); then
	echo "Roots equal: $sync_root"
else
	echo "ROOTS DIFFER: kubo $kubo_root, ipfs-sync $sync_root"
fi

# ---- incremental ----------------------------------------------------------
# A publish cycle: the synced tree is a copy of SRC; a mutated copy stands in
# for the upstream mirror and is rsynced over it; then ipfs-sync re-syncs the
# same path into the same repository, and kubo re-adds the whole tree into
# its repository (which already holds the old tree's blocks).
incremental() {
	local tree=$work/inc/tree repo=$work/inc/repo
	json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d.get(sys.argv[2], ''))" "$@"; }

	mkdir -p "$work/inc"
	log "incremental: copying the tree"
	cp -a "$SRC" "$tree"
	log "incremental: first sync of the copy"
	measure inc-full "$IPFS_SYNC_BIN" --repo "$repo" --json sync "$tree"
	local full_s=$WALL
	[[ $(json "$work/inc-full.out" root) == "$sync_root" ]] || die "the copy's root differs from SRC's (cp -a lost metadata?)"

	log "incremental: re-sync, nothing changed"
	measure inc-noop "$IPFS_SYNC_BIN" --repo "$repo" --json sync "$tree"
	local noop_s=$WALL noop_rss=$RSS noop_read
	noop_read=$(json "$work/inc-noop.out" bytes_read)
	if [[ -z $noop_read ]] || (($(is "$noop_read >= $BYTES"))); then
		cat <<EOF

### Incremental: skipped

ipfs-sync has no incremental mode yet: re-syncing an unchanged tree read
${noop_read:-?} of $BYTES bytes in $(fmt "$noop_s")s (first sync: $(fmt "$full_s")s).
EOF
		return 0
	fi

	MUT=$BENCH_DIR/$PRESET-seed$SEED.mut$MUTATE_SEED
	ensure_tree "$MUT" mutated_tree
	local stats changed deleted
	stats=$(rsync -a --delete --dry-run --stats "$MUT/" "$tree/")
	changed=$(sed -n 's/^Number of regular files transferred: //p' <<<"$stats" | tr -d ,)
	deleted=$(sed -n 's/^Number of deleted files: \([0-9,]*\).*/\1/p' <<<"$stats" | tr -d ,)
	log "incremental: rsync -a --delete (${changed:-?} files new or changed, ${deleted:-?} entries deleted)"
	rsync -a --delete "$MUT/" "$tree/"
	"$work/floor" -mode read "$tree" >/dev/null # the new files into the page cache

	log "incremental: ipfs-sync re-sync after the publish cycle"
	measure inc-sync "$IPFS_SYNC_BIN" --repo "$repo" --json sync "$tree"
	local inc_s=$WALL inc_rss=$RSS inc_root inc_read inc_bytes
	inc_root=$(json "$work/inc-sync.out" root)
	inc_read=$(json "$work/inc-sync.out" bytes_read)
	inc_bytes=$(json "$work/inc-sync.out" bytes)
	local fc
	fc=$(python3 -c '
import json, sys
c = json.load(open(sys.argv[1])).get("file_changes") or {}
print(", ".join(f"{c[k]} {k}" for k in ("added", "modified", "metadata_only", "removed", "unchanged") if k in c))
' "$work/inc-sync.out")

	log "incremental: kubo re-adds the whole tree"
	measure inc-kubo env IPFS_PATH="$KUBO_REPO" "$IPFS_BIN" "${KUBO_ADD[@]}" "$tree"
	local kinc_s=$WALL kinc_rss=$RSS kinc_root
	kinc_root=$(head -n 1 "$work/inc-kubo.out")

	cat <<EOF

### Incremental: mutate --seed $MUTATE_SEED, rsync -a --delete, re-sync

rsync: ${changed:-?} files new or changed, ${deleted:-?} entries deleted; ipfs-sync's file changes: ${fc:-?}; the tree now holds $(fmt "$(calc "$inc_bytes / 1e6")" 1) MB.

| step | wall s | read MB | peak RSS MiB |
|---|---:|---:|---:|
| ipfs-sync first sync (the copy) | $(fmt "$full_s") | | |
| ipfs-sync re-sync, nothing changed | $(fmt "$noop_s") | $(fmt "$(calc "$noop_read / 1e6")" 1) | $(fmt "$(calc "$noop_rss / 1024")" 0) |
| ipfs-sync re-sync after the cycle | $(fmt "$inc_s") | $(fmt "$(calc "$inc_read / 1e6")" 1) | $(fmt "$(calc "$inc_rss / 1024")" 0) |
| kubo re-adds the whole tree | $(fmt "$kinc_s") | $(fmt "$(calc "$inc_bytes / 1e6")" 1) | $(fmt "$(calc "$kinc_rss / 1024")" 0) |

Re-sync speed-up over kubo: $(fmt "$(calc "$kinc_s / $inc_s")" 1)×.
EOF
	if [[ $inc_root == "$kinc_root" ]]; then
		echo "Roots equal after the cycle: $inc_root"
	else
		echo "ROOTS DIFFER after the cycle: kubo $kinc_root, ipfs-sync $inc_root"
		roots_ok=0
	fi
}
if [[ $INCREMENTAL != 0 ]]; then
	incremental
fi

# ---- store comparison -----------------------------------------------------
if [[ $STORECMP == 1 ]]; then
	log "storecmp: exporting the CAR"
	"$IPFS_SYNC_BIN" --repo "$SYNC_REPO" export --car "$work/tree.car" "$sync_root" ||
		die "ipfs-sync export failed"
	(cd "$here" && "$GO" build -o "$work/storecmp" ./storecmp) || die "cannot build bench/storecmp"
	log "storecmp: pebble vs flatfs"
	echo
	echo "### Block stores: the import's blocks written and read back (bench/storecmp)"
	echo
	# shellcheck disable=SC2086 # STORECMP_ARGS is a list of flags
	"$work/storecmp" -car "$work/tree.car" -dir "$work/stores" -readers "$ncpu" $STORECMP_ARGS
fi

((roots_ok)) || die "root CIDs differ"
