#!/usr/bin/env bash
# bench/nocopy.sh: what `sync --nocopy` costs and saves against a copying
# sync, on deterministic synthetic mirrors (mkmirror). For each preset in
# PRESETS: the repository's size on disk (du) against the tree's, copying
# and --nocopy. On the first preset also the speeds: a full import each
# way against the SHA-256 floor (bench/floor: every byte hashed on every
# core, nothing written), and, from each repository, `pull` of the root
# into an empty directory from the repository itself and from its `serve`
# (a gateway on loopback). `make bench` runs it.
#
# Environment (all optional):
#   IPFS_SYNC_BIN  ipfs-sync binary   (default: <repo>/bin/ipfs-sync)
#   MKMIRROR       tree generator     (default: built into <repo>/bin/mkmirror)
#   PRESETS        mkmirror presets   (default: "small medium"; the speeds run on the first)
#   SEED           mkmirror seed      (default: 1)
#   BENCH_DIR      cache of trees and scratch space (default: /tmp/ipfs-sync-bench)
#   RUNS           timed runs of each, interleaved copy / --nocopy; the best is kept (default: 3)
#   KEEP           1 keeps the scratch directory (default: 0)
#
# The repositories reference a copy of each cached tree made for this run
# (the cache is shared with the other bench scripts, which may regenerate
# it meanwhile; a --nocopy repository's blocks go unavailable when their
# files change). Times are wall times with a warm page cache (each tree is read
# once first); pulls end with sync(1), so their data is on disk. On a
# machine shared with other work the times are noisy: compare the ratios
# of one run, which interleaves the two storages.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$here")
IPFS_SYNC_BIN=${IPFS_SYNC_BIN:-$repo_root/bin/ipfs-sync}
PRESETS=${PRESETS:-small medium}
SEED=${SEED:-1}
BENCH_DIR=${BENCH_DIR:-/tmp/ipfs-sync-bench}
RUNS=${RUNS:-3}
KEEP=${KEEP:-0}
GO=${GO:-go}

BENCH_NAME=bench/nocopy
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

[[ -x $IPFS_SYNC_BIN ]] || die "no ipfs-sync at $IPFS_SYNC_BIN (run 'make build' or set IPFS_SYNC_BIN)"
command -v python3 >/dev/null || die "python3 is needed (the report's arithmetic)"
command -v "$GO" >/dev/null || die "go is needed to build bench/floor and mkmirror"
need_mkmirror

scratch nocopy
trap remove_scratch EXIT
trap 'exit 130' INT TERM

log "building bench/floor"
(cd "$here" && "$GO" build -o "$work/floor" ./floor) || die "cannot build bench/floor"

wait_line() {
	for _ in $(seq 200); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	die "$1: no '$2'"
}
# timed VAR CMD...: runs CMD, adds its wall time (s) to the list in VAR.
timed() {
	local var=$1 t0 t1
	shift
	t0=$(now)
	"$@" >/dev/null
	t1=$(now)
	printf -v "$var" '%s %s' "${!var}" "$(calc "$t1 - $t0")"
}
best() { python3 -c "print(min(float(x) for x in '$1'.split()))"; }
du_bytes() { du -s --block-size=1 "$1" | cut -f1; }

rows=()
first=1
for preset in $PRESETS; do
	tree=$BENCH_DIR/$preset-seed$SEED
	log "tree: $tree"
	ensure_tree "$tree" "$MKMIRROR" gen --preset "$preset" --seed "$SEED"
	cp -a "$tree" "$work/src"
	tree=$work/src
	"$work/floor" -mode read "$tree" >/dev/null # into the page cache
	tree_du=$(du_bytes "$tree")

	copy_t='' nocopy_t='' sha_t=''
	runs=$RUNS
	[[ $first == 1 ]] || runs=1
	for i in $(seq "$runs"); do
		log "$preset: import run $i of $runs (copy, --nocopy, SHA-256 floor)"
		rm -rf "$work/copy" "$work/nocopy"
		timed copy_t "$IPFS_SYNC_BIN" --repo "$work/copy" -q sync --name m "$tree"
		timed nocopy_t "$IPFS_SYNC_BIN" --repo "$work/nocopy" -q sync --name m --nocopy "$tree"
		line=$("$work/floor" -mode sha256 "$tree")
		sha_t="$sha_t $(sed -E 's/.* seconds=([0-9.]+).*/\1/' <<<"$line")"
	done
	copy_du=$(du_bytes "$work/copy")
	nocopy_du=$(du_bytes "$work/nocopy")
	rows+=("| $preset | $(fmt "$(calc "$tree_du / 2**20")" 0) MiB | $(fmt "$(calc "$copy_du / 2**20")" 1) MiB ($(fmt "$(calc "100 * $copy_du / $tree_du")" 1) %) | $(fmt "$(calc "$nocopy_du / 2**20")" 1) MiB ($(fmt "$(calc "100 * $nocopy_du / $tree_du")" 2) %) | $(fmt "$(best "$copy_t")") s | $(fmt "$(best "$nocopy_t")") s | $(fmt "$(best "$sha_t")") s | $(fmt "$(calc "100 * $(best "$sha_t") / $(best "$nocopy_t")")" 0) % |")

	if [[ $first == 1 ]]; then
		first=0
		root=$("$IPFS_SYNC_BIN" --repo "$work/nocopy" -q sync --name m --nocopy "$tree")
		croot=$("$IPFS_SYNC_BIN" --repo "$work/copy" -q sync --name m "$tree")
		[[ $root == "$croot" ]] || die "roots differ: copy $croot, --nocopy $root"
		for kind in copy nocopy; do
			port=$(freeport)
			"$IPFS_SYNC_BIN" --repo "$work/$kind" serve --listen "127.0.0.1:$port" 2>"$work/serve-$kind.log" &
			pids+=($!)
			wait_line "$work/serve-$kind.log" serving
			printf -v "port_$kind" '%s' "$port"
		done
		pull_local() { rm -rf "$work/dest"; "$IPFS_SYNC_BIN" --repo "$work/$1" -q pull "$root" "$work/dest" && sync; }
		pull_http() {
			rm -rf "$work/dest" "$work/client"
			local port=port_$1
			"$IPFS_SYNC_BIN" --repo "$work/client" -q pull "$root" "$work/dest" --from "http://127.0.0.1:${!port}" && sync
		}
		local_copy='' local_nocopy='' http_copy='' http_nocopy=''
		pull_local copy # untimed: both repositories' packs into the page cache
		pull_local nocopy
		for i in $(seq "$RUNS"); do
			log "$preset: pull run $i of $RUNS (local repository, then its serve; copy, then --nocopy)"
			timed local_copy pull_local copy
			timed local_nocopy pull_local nocopy
			timed http_copy pull_http copy
			timed http_nocopy pull_http nocopy
		done
		diff -r --no-dereference "$tree" "$work/dest" >/dev/null 2>&1 || die "the pulled tree differs from $tree"
		speed_rows=(
			"| pull from the repository | $(fmt "$(best "$local_copy")") s | $(fmt "$(best "$local_nocopy")") s | $(fmt "$(calc "$(best "$local_nocopy") / $(best "$local_copy")")") × |"
			"| pull from its serve (loopback) | $(fmt "$(best "$http_copy")") s | $(fmt "$(best "$http_nocopy")") s | $(fmt "$(calc "$(best "$http_nocopy") / $(best "$http_copy")")") × |"
		)
		for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
		wait 2>/dev/null || true
		pids=()
	fi
	rm -rf "$work/copy" "$work/nocopy" "$work/dest" "$work/client" "$work/src"
done

cat <<EOF

## sync --nocopy ($(uname -m), $(nproc) cores; best of $RUNS, interleaved; commit $(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown))

| preset | tree (du) | repository, copying | repository, --nocopy | import, copying | import, --nocopy | SHA-256 floor | --nocopy / floor |
|---|---|---|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")

| ${PRESETS%% *} preset: reading back | copying repository | --nocopy repository | --nocopy / copying |
|---|---|---|---|
$(printf '%s\n' "${speed_rows[@]}")
EOF
