#!/usr/bin/env bash
# bench/large.sh: ipfs-sync at mirror scale. `make bench-large` runs it.
#
# On mkmirror's large preset (~1M files, ~20 GiB, ~580k directories) it
# measures, in one run:
#   1. a full import (wall time, peak RSS);
#   2. one publish cycle (mkmirror mutate, applied IN PLACE: the tree is
#      too big to copy twice on most machines), then the re-sync (wall
#      time, peak RSS, bytes read) against the floor: a stat walk of the
#      whole tree (`find -printf`) plus SHA-256 of exactly the files the
#      cycle changed or added (bench/floor -files, all cores); both with a
#      warm page cache (an untimed dry run first);
#   3. an unchanged re-sync;
#   4. a flat directory of FLAT entries (an npm/PyPI-style index) updated
#      by one entry: blocks written and wall time;
#   5. with KUBO=1, kubo's `ipfs add -r` of the same tree into a fresh repo
#      and again into the same repo (its cost for every publish: kubo
#      re-reads and re-hashes everything).
#
# Environment (all optional):
#   IPFS_SYNC_BIN, IPFS_BIN, MKMIRROR, SEED, BENCH_DIR as in bench/run.sh
#   PRESET     mkmirror preset (default: large; small for a quick try)
#   MUTATE_SEED  seed of the publish cycle (default: the number of cycles
#              already applied to the cached tree + 1)
#   FLAT       entries of the flat directory (default: 200000; 0 skips)
#   KUBO       1 also runs kubo (default: 0; on the large preset that takes
#              ~25 min per add and another ~26 GB of disk)
#
# Disk: the tree (~24 GB on ext4) plus ipfs-sync's repository (~26 GB);
# with KUBO=1 kubo's repository comes after ipfs-sync's is removed.
#
# The tree is cached in $BENCH_DIR/$PRESET-seed$SEED with the number of
# cycles applied in $BENCH_DIR/$PRESET-seed$SEED.cycles and the version of
# the generator that made it in $BENCH_DIR/$PRESET-seed$SEED.version; each
# run applies one more cycle.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$here")
IPFS_SYNC_BIN=${IPFS_SYNC_BIN:-$repo_root/bin/ipfs-sync}
IPFS_BIN=${IPFS_BIN:-$repo_root/bin/ipfs}
PRESET=${PRESET:-large}
SEED=${SEED:-1}
BENCH_DIR=${BENCH_DIR:-/tmp/ipfs-sync-bench}
FLAT=${FLAT:-200000}
KUBO=${KUBO:-0}
GO=${GO:-go}
TIME=/usr/bin/time

BENCH_NAME=bench-large
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

[[ -x $IPFS_SYNC_BIN ]] || die "no ipfs-sync at $IPFS_SYNC_BIN (run 'make build')"
[[ $KUBO == 0 || -x $IPFS_BIN ]] || die "no kubo at $IPFS_BIN (run 'make kubo')"
"$TIME" -f %M true >/dev/null 2>&1 || die "$TIME is not GNU time (apt-get install -y time)"
command -v python3 >/dev/null || die "python3 is needed (the report's arithmetic, the flat directory)"
need_mkmirror
IPFS_SYNC_BIN=$(cd "$(dirname "$IPFS_SYNC_BIN")" && pwd)/$(basename "$IPFS_SYNC_BIN")

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
tree=$BENCH_DIR/$PRESET-seed$SEED
work=$(mktemp -d "$BENCH_DIR/large.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# timed NAME CMD...: runs CMD under GNU time; sets NAME_s, NAME_rss_mib.
timed() {
	local name=$1
	shift
	local t0 t1
	t0=$(now)
	"$TIME" -f %M -o "$work/$name.rss" "$@"
	t1=$(now)
	printf -v "${name}_s" %s "$(calc "$t1 - $t0")"
	printf -v "${name}_rss_mib" %s "$(calc "$(tail -1 "$work/$name.rss") / 1024")"
}
jsonfield() { python3 -c "import json,sys; print(json.load(open('$1'))$2)"; }

go_floor=$work/floor
(cd "$here" && "$GO" build -o "$go_floor" ./floor) || die "cannot build bench/floor"

# ---- the tree -------------------------------------------------------------
version=$("$MKMIRROR" version)
if [[ -d $tree && $(cat "$tree.version" 2>/dev/null) != "$version" ]]; then
	log "$tree was made by another generator than $version: regenerating it"
	chmod -R u+w "$tree" 2>/dev/null || true
	rm -rf "$tree" "$tree.cycles" "$tree.version" "$tree.fingerprint"
fi
if [[ ! -d $tree ]]; then
	log "generating mkmirror --preset $PRESET --seed $SEED"
	rm -rf "$tree.tmp"
	"$MKMIRROR" gen --preset "$PRESET" --seed "$SEED" "$tree.tmp" >/dev/null
	mv "$tree.tmp" "$tree"
	echo 0 >"$tree.cycles"
	echo "$version" >"$tree.version"
fi
cycles=$(cat "$tree.cycles" 2>/dev/null || echo 0)
MUTATE_SEED=${MUTATE_SEED:-$((cycles + 1))}
"$MKMIRROR" stats "$tree" >"$work/stats.json"
files=$(jsonfield "$work/stats.json" '["files"]')
bytes=$(jsonfield "$work/stats.json" '["bytes"]')
dirs=$(jsonfield "$work/stats.json" '["dirs"]')
log "tree $tree: $files files, $dirs dirs, $bytes bytes, $cycles cycles applied"

# ---- 1. full import -------------------------------------------------------
repo=$work/repo
log "full import"
timed full "$IPFS_SYNC_BIN" --repo "$repo" --json sync --name large "$tree" >"$work/full.json"
full_root=$(jsonfield "$work/full.json" '["root"]')
full_blocks=$(jsonfield "$work/full.json" '["blocks_written"]')
repo_mib=$(du -sm "$repo" | cut -f1)

# ---- 2. one publish cycle -------------------------------------------------
find_list() { find "$tree" -printf '%y %P\t%s %T@ %m\n' | LC_ALL=C sort; }
find_list >"$work/before.txt"
log "mutate --seed $MUTATE_SEED (in place)"
"$MKMIRROR" mutate --seed "$MUTATE_SEED" "$tree" >/dev/null
echo $((cycles + 1)) >"$tree.cycles"
# Floor, part 1: the stat walk every incremental tool needs (warm cache,
# best of 3).
walk_s=
for _ in 1 2 3; do
	t0=$(now)
	find "$tree" -printf '%y %P\t%s %T@ %m\n' >"$work/walk.txt"
	t1=$(now)
	s=$(calc "$t1 - $t0")
	[[ -z $walk_s ]] || (($(is "$s < $walk_s"))) && walk_s=$s
done
LC_ALL=C sort "$work/walk.txt" >"$work/after.txt"
# The regular files that are new or differ in size, mtime or mode.
comm -13 "$work/before.txt" "$work/after.txt" | awk -F'\t' '/^f /{ print substr($1, 3) }' >"$work/changed.txt"
changed_files=$(wc -l <"$work/changed.txt")
# Floor, part 2: SHA-256 of exactly those files, all cores.
"$go_floor" -mode sha256 -files "$work/changed.txt" "$tree" >"$work/sha.txt"
sha_s=$(sed -n 's/.*seconds=\([0-9.]*\) .*/\1/p' "$work/sha.txt")
changed_bytes=$(sed -n 's/.*bytes=\([0-9]*\) .*/\1/p' "$work/sha.txt")
floor_s=$(calc "$walk_s + $sha_s")

# The floor ran with a warm page cache; give ipfs-sync the same: a dry run
# reads what the walk reads (listings, the previous directory blocks, the
# index) but no changed file. Cold, after a full import has pushed the
# tree out of the page cache, the same re-sync took 49.5 s instead of
# 18.1 s here (docs/benchmarks.md).
log "warming up: ipfs-sync sync --dry-run"
"$IPFS_SYNC_BIN" --repo "$repo" -q sync --dry-run --name large "$tree" >/dev/null
log "re-sync after the cycle"
timed inc "$IPFS_SYNC_BIN" --repo "$repo" --json sync --name large "$tree" >"$work/inc.json"
inc_read=$(jsonfield "$work/inc.json" '["bytes_read"]')
inc_blocks=$(jsonfield "$work/inc.json" '["blocks_written"]')
inc_root=$(jsonfield "$work/inc.json" '["root"]')

# ---- 3. unchanged re-sync -------------------------------------------------
log "re-sync, nothing changed"
timed same "$IPFS_SYNC_BIN" --repo "$repo" --json sync --name large "$tree" >"$work/same.json"

# ---- 4. one entry in a huge flat directory --------------------------------
flat_rows=
if ((FLAT > 0)); then
	flat=$work/flat
	log "flat directory of $FLAT entries"
	python3 - "$flat" "$FLAT" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
for i in range(n):
    p = os.path.join(d, "pkg-%06d-1.0.tgz" % i)
    with open(p, "wb") as f:
        f.write(b"%d" % i * (i % 7))
    os.utime(p, ns=(1_600_000_000_000_000_000 + i, 1_600_000_000_000_000_000 + i))
EOF
	timed flat1 "$IPFS_SYNC_BIN" --repo "$repo" --json sync --name flat "$flat" >"$work/flat1.json"
	echo new >"$flat/pkg-new-1.0.tgz"
	touch -d '2020-01-01' "$flat/pkg-new-1.0.tgz"
	timed flat2 "$IPFS_SYNC_BIN" --repo "$repo" --json sync --name flat "$flat" >"$work/flat2.json"
	flat_rows="| $FLAT-entry flat directory, first sync | $(fmt "$flat1_s") | $(fmt "$flat1_rss_mib" 0) | $(jsonfield "$work/flat1.json" '["blocks_written"]') |
| the same, one entry added | $(fmt "$flat2_s") | $(fmt "$flat2_rss_mib" 0) | $(jsonfield "$work/flat2.json" '["blocks_written"]') |"
	rm -rf "$flat"
fi
rm -rf "$repo"

# ---- 5. kubo --------------------------------------------------------------
kubo_rows=
if [[ $KUBO == 1 ]]; then
	export IPFS_PATH=$work/kubo
	"$IPFS_BIN" init --profile test,unixfs-v1-2025 >/dev/null
	# An array, not a function: timed runs it under /usr/bin/time.
	add=("$IPFS_BIN" add -r -H -Q --offline --raw-leaves=false --preserve-mode --preserve-mtime "$tree")
	log "kubo: ipfs add -r into a fresh repo"
	timed kubo1 "${add[@]}" >"$work/kubo1.out"
	log "kubo: ipfs add -r again (what a re-add costs every publish)"
	timed kubo2 "${add[@]}" >"$work/kubo2.out"
	kubo_root=$(tail -1 "$work/kubo2.out")
	kubo_rows="| kubo \`ipfs add -r\`, fresh repo | $(fmt "$kubo1_s") | $(fmt "$kubo1_rss_mib" 0) | |
| kubo \`ipfs add -r\` again (its re-add) | $(fmt "$kubo2_s") | $(fmt "$kubo2_rss_mib" 0) | |"
	rm -rf "$IPFS_PATH"
fi

# ---- report ---------------------------------------------------------------
cat <<EOF

## mkmirror --preset $PRESET --seed $SEED ($cycles cycles applied before this run), mutate --seed $MUTATE_SEED ($version)

- tree: $files files, $dirs directories, $(calc "round($bytes / 1e9, 2)") GB
- machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM; load before/after: see the log
- ipfs-sync: $IPFS_SYNC_BIN (tree at $(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown))
- the cycle changed or added $changed_files files, $(calc "round($changed_bytes / 1e6, 1)") MB

| step | wall s | peak RSS MiB | blocks written |
|---|---:|---:|---:|
| floor: stat walk (\`find -printf\`, best of 3) | $(fmt "$walk_s") | | |
| floor: SHA-256 of the changed files (all cores) | $(fmt "$sha_s") | | |
| ipfs-sync full import | $(fmt "$full_s") | $(fmt "$full_rss_mib" 0) | $full_blocks |
| ipfs-sync re-sync after the cycle (read $(calc "round($inc_read / 1e6, 1)") MB) | $(fmt "$inc_s") | $(fmt "$inc_rss_mib" 0) | $inc_blocks |
| ipfs-sync re-sync, nothing changed | $(fmt "$same_s") | $(fmt "$same_rss_mib" 0) | |
$flat_rows
$kubo_rows

| ratio | value |
|---|---:|
| re-sync / floor (stat walk + SHA-256 of changed bytes) | $(fmt "$(calc "$inc_s / $floor_s")")× |
EOF
if [[ $KUBO == 1 ]]; then
	echo "| kubo re-add / ipfs-sync re-sync | $(fmt "$(calc "$kubo2_s / $inc_s")" 0)× |"
	echo
	echo "Roots: ipfs-sync $inc_root, kubo $kubo_root ($([[ $inc_root == "$kubo_root" ]] && echo equal || echo DIFFERENT))."
fi
echo
echo "Repository after the full import: $repo_mib MiB. Full import root: $full_root."
