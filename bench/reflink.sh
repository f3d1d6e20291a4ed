#!/usr/bin/env bash
# bench/reflink.sh: the three storages of sync on one file system that has
# reflinks: copying, --nocopy (references) and --nocopy=reflink (clones),
# each a full import of a deterministic synthetic mirror (mkmirror) into a
# fresh repository beside the tree. The file system is an XFS image made
# with reflink=1 and loop-mounted here (a clone needs the tree and the
# repository on one file system), so the script needs root and xfsprogs;
# without them it says so and exits 0. `make bench` runs it.
#
# For each storage: the import's wall time (best of RUNS, the storages
# interleaved) against the SHA-256 floor (bench/floor) of the same tree on
# the same file system; du of the repository, which counts a shared extent
# in full, as it does in the tree; the bytes of its packs in extents that
# xfs_io's fiemap flags shared (0x2000); and what the repository holds
# alone, du less those (btrfs calls it exclusive), which is what it costs
# while the tree keeps its bytes. The file system's used blocks before and
# after an import would say the same, but XFS frees a removed repository's
# blocks in the background, into the next import's measure. The packs'
# apparent size is the data they hold. The roots must be equal.
#
# Environment (all optional):
#   IPFS_SYNC_BIN  ipfs-sync binary   (default: <repo>/bin/ipfs-sync; `make build`)
#   MKMIRROR       tree generator     (default: built into <repo>/bin/mkmirror)
#   PRESET         mkmirror preset    (default: small)
#   SEED           mkmirror seed      (default: 1)
#   BENCH_DIR      cache of trees and scratch space (default: /tmp/ipfs-sync-bench;
#                  the same trees as bench/run.sh's); the image is sparse, about
#                  three times the tree at most
#   RUNS           timed imports of each storage; the best is kept (default: 3)
#   KEEP           1 keeps the scratch directory, unmounted (default: 0)
#
# On a machine shared with other work the times are noisy: compare the
# ratios of one run, which interleaves the storages.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$here")
IPFS_SYNC_BIN=${IPFS_SYNC_BIN:-$repo_root/bin/ipfs-sync}
PRESET=${PRESET:-small}
SEED=${SEED:-1}
BENCH_DIR=${BENCH_DIR:-/tmp/ipfs-sync-bench}
RUNS=${RUNS:-3}
KEEP=${KEEP:-0}
GO=${GO:-go}

BENCH_NAME=bench/reflink
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

skip() {
	echo "$BENCH_NAME: skipped: $*" >&2
	exit 0
}
[[ $(id -u) == 0 ]] || skip "not root: cannot loop-mount an XFS image with reflink=1"
[[ -e /dev/loop-control ]] || skip "no loop devices here (/dev/loop-control)"
for tool in mkfs.xfs xfs_io; do
	command -v "$tool" >/dev/null || skip "$tool not installed (apt-get install -y xfsprogs; make e2e-deps does as root)"
done
[[ -x $IPFS_SYNC_BIN ]] || die "no ipfs-sync at $IPFS_SYNC_BIN (run 'make build' or set IPFS_SYNC_BIN)"
command -v python3 >/dev/null || die "python3 is needed (the report's arithmetic)"
command -v "$GO" >/dev/null || die "go is needed to build bench/floor and mkmirror"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
case $PRESET in tiny | small | medium | large) ;; *) die "unknown PRESET $PRESET" ;; esac
need_mkmirror
IPFS_SYNC_BIN=$(cd "$(dirname "$IPFS_SYNC_BIN")" && pwd)/$(basename "$IPFS_SYNC_BIN")

scratch reflink
mnt=$work/mnt
mounted=0
cleanup() {
	local rc=$?
	if [[ $mounted == 1 ]]; then umount "$mnt" || rc=1; fi
	if [[ $KEEP == 1 ]]; then
		log "kept $work (the image unmounted)"
	else
		rm -rf "$work"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SRC=$BENCH_DIR/$PRESET-seed$SEED
ensure_tree "$SRC" "$MKMIRROR" gen --preset "$PRESET" --seed "$SEED"
tree_kb=$(du -sk "$SRC" | cut -f1)
img_kb=$((tree_kb * 3 + 1048576))
avail_kb=$(df -Pk "$BENCH_DIR" | awk 'NR==2 {print $4}')
((avail_kb > img_kb)) || die "$BENCH_DIR has $((avail_kb / 1048576)) GiB free; the image may need $((img_kb / 1048576)) GiB"

log "building bench/floor"
(cd "$here" && "$GO" build -o "$work/floor" ./floor) || die "cannot build bench/floor"

log "making a $((img_kb / 1024)) MiB XFS image with reflink=1 and mounting it"
truncate -s "${img_kb}K" "$work/xfs.img"
mkfs.xfs -q -f -m reflink=1 "$work/xfs.img" || die "mkfs.xfs failed"
mkdir "$mnt"
mount -o loop "$work/xfs.img" "$mnt" || skip "cannot loop-mount an XFS image here"
mounted=1

log "copying $SRC onto it"
cp -a "$SRC" "$mnt/tree"
tree=$mnt/tree

# packs REPO: "APPARENT SHARED" bytes of REPO's packs.
packs() {
	local apparent=0 shared=0 p a s
	for p in "$1"/packs/*.pack; do
		a=$(stat -c %s "$p")
		s=$(xfs_io -r -c 'fiemap -v' "$p" | python3 -c '
import sys
n = 0
for line in sys.stdin:
    f = line.split()
    if len(f) == 5 and f[0][:-1].isdigit() and f[2] != "hole" and int(f[4], 16) & 0x2000:
        n += int(f[3]) * 512
print(n)')
		apparent=$((apparent + a))
		shared=$((shared + s))
	done
	echo "$apparent $shared"
}
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

"$work/floor" -mode read "$tree" >/dev/null # into the page cache
sha_s=
storages=(copy nocopy reflink)
declare -A flag=([copy]=--nocopy=false [nocopy]=--nocopy [reflink]=--nocopy=reflink)
declare -A wall root
for ((i = 1; i <= RUNS; i++)); do
	line=$("$work/floor" -mode sha256 "$tree")
	if [[ -z $sha_s ]] || (($(is "$(field seconds "$line") < $sha_s"))); then sha_s=$(field seconds "$line"); fi
	for s in "${storages[@]}"; do
		rm -rf "$mnt/repo-$s"
		sync -f "$mnt"
		t0=$(now)
		r=$("$IPFS_SYNC_BIN" --repo "$mnt/repo-$s" -q sync "${flag[$s]}" "$tree") || die "sync ${flag[$s]} failed"
		t=$(calc "$(now) - $t0")
		log "$s run $i: $(fmt "$t") s"
		if [[ -z ${wall[$s]:-} ]] || (($(is "$t < ${wall[$s]}"))); then wall[$s]=$t; fi
		root[$s]=$r
	done
done
for s in "${storages[@]}"; do
	[[ ${root[$s]} == "${root[copy]}" ]] || die "roots differ: copying ${root[copy]}, ${flag[$s]} ${root[$s]}"
done

tree_bytes=$(du -s --block-size=1 "$tree" | cut -f1)
rows=()
for s in "${storages[@]}"; do
	sync -f "$mnt"
	read -r apparent shared < <(packs "$mnt/repo-$s")
	du_b=$(du -s --block-size=1 "$mnt/repo-$s" | cut -f1)
	alone=$((du_b - shared))
	rows+=("| \`${flag[$s]}\` | $(fmt "${wall[$s]}") s | $(fmt "$(calc "100 * $sha_s / ${wall[$s]}")" 0) % | $(fmt "$(calc "$du_b / 2**20")" 1) MiB | $(fmt "$(calc "$shared / 2**20")" 1) MiB | $(fmt "$(calc "$alone / 2**20")" 1) MiB ($(fmt "$(calc "100 * $alone / $tree_bytes")" 1) %) | $(fmt "$(calc "$apparent / 2**20")" 1) MiB |")
done

cat <<EOF

## sync's storages on XFS with reflinks: $PRESET preset

- tree: mkmirror --preset $PRESET --seed $SEED ($("$MKMIRROR" version)), $(fmt "$(calc "$tree_bytes / 2**20")" 0) MiB (du), copied onto a loop-mounted XFS made with reflink=1; the repositories beside it; root ${root[copy]}
- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); ipfs-sync at $(git -C "$repo_root" describe --always --dirty 2>/dev/null || echo "not a git checkout")
- best of $RUNS interleaved imports, warm page cache; SHA-256 floor $(fmt "$sha_s") s; "held alone": du less the bytes in shared extents (of the tree's du)

| storage | import | floor / import | du of the repository | in shared extents | held alone | packs, apparent |
|---|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${rows[@]}")
EOF
