#!/usr/bin/env bash
# e2e/conformance.sh: the IPFS gateway conformance suite
# (github.com/ipfs/gateway-conformance) against `ipfs-sync serve --browse`
# and against kubo's gateway on the same machine, on the same fixtures.
#
#   e2e/conformance.sh SUITE_DIR [ipfs-sync|kubo|both]
#
# SUITE_DIR is a checkout of the suite (see docs/reliability.md for the
# release used). For ipfs-sync, its fixture CARs are loaded into a fresh
# repository with `ipfs-sync import` and served with `serve --browse`; for
# kubo, `ipfs dag import --pin-roots=false` into a fresh IPFS_PATH (profile
# test) and `ipfs daemon --offline`. Both listen on a free 127.0.0.1 port.
# The suite runs as `go test ./tests -specs=$SPECS` in SUITE_DIR (the Go
# module proxy fetches its dependencies once). Each run prints a line
#   NAME: PASS pass, FAIL fail, SKIP skip
# counting the checks (the suite's leaf subtests), then the failing ones.
# With both, it exits 1 unless ipfs-sync passes at least as many checks as
# kubo and fails none that kubo passes.
#
# Environment (all optional):
#   IPFS_SYNC_BIN  default <repo>/bin/ipfs-sync (make build)
#   IPFS_BIN       default <repo>/bin/ipfs      (make kubo)
#   SPECS          default the five below
#   KEEP           1 keeps the scratch directory and the suite's output
set -euo pipefail
export LC_ALL=C # one sort order for comm

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$here")
IPFS_SYNC_BIN=${IPFS_SYNC_BIN:-$repo_root/bin/ipfs-sync}
IPFS_BIN=${IPFS_BIN:-$repo_root/bin/ipfs}
SPECS=${SPECS:-trustless-block-gateway,trustless-car-gateway,path-unixfs-gateway,path-raw-gateway,path-range-gateway}

die() { echo "conformance: $*" >&2; exit 1; }

[[ $# -ge 1 && $# -le 2 ]] || die "usage: e2e/conformance.sh SUITE_DIR [ipfs-sync|kubo|both]"
suite=$(cd "$1" && pwd) || die "no suite checkout at $1"
which=${2:-both}
[[ -d $suite/tests && -d $suite/fixtures ]] || die "$suite is not a gateway-conformance checkout (no tests/, fixtures/)"
case $which in ipfs-sync | kubo | both) ;; *) die "run ipfs-sync, kubo or both, not $which" ;; esac

scratch=$(mktemp -d "${TMPDIR:-/tmp}/ipfs-sync-conformance.XXXXXX")
server=
cleanup() {
	if [[ -n $server ]]; then
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
	fi
	if [[ ${KEEP:-0} == 1 ]]; then
		echo "conformance: kept $scratch" >&2
	else
		rm -rf "$scratch"
	fi
}
trap cleanup EXIT

mapfile -t cars < <(find "$suite/fixtures" -name '*.car' | sort)
((${#cars[@]} > 0)) || die "no fixture CARs under $suite/fixtures"

# listening LOG PATTERN REPLACEMENT: the address (host:port) a server
# started in the background prints to LOG, as REPLACEMENT makes it of the
# first line matching PATTERN (sed -E).
listening() {
	local addr
	for _ in $(seq 300); do
		addr=$(sed -nE "s#$2#$3#p" "$1" | head -n1)
		if [[ -n $addr ]]; then
			echo "$addr"
			return 0
		fi
		kill -0 "$server" 2>/dev/null || break
		sleep 0.1
	done
	cat "$1" >&2
	die "the server did not start (log above)"
}

# run_suite NAME KEY URL: the suite against the gateway at URL, and its
# tally; KEY.passed (the count) and KEY.failed (the names) in scratch.
run_suite() {
	local out=$scratch/$2.out
	(cd "$suite" && GATEWAY_URL=$3 go test ./tests -count=1 -v -specs="$SPECS") >"$out" 2>&1 || true
	# A check is a test without subtests; its last verdict counts.
	awk '
		$1 ~ /^---$/ && $2 ~ /^(PASS|FAIL|SKIP):$/ { v[$3] = substr($2, 1, 4) }
		END {
			for (t in v) for (u in v) if (index(u, t "/") == 1) { parent[t] = 1; break }
			for (t in v) if (!(t in parent)) n[v[t]]++
			printf "%s: %d pass, %d fail, %d skip\n", name, n["PASS"], n["FAIL"], n["SKIP"]
			for (t in v) if (!(t in parent) && v[t] == "FAIL") print t | "sort > " failed
			close("sort > " failed)
			print n["PASS"] > passed
			if (n["PASS"] + n["FAIL"] == 0) exit 1
		}' name="$1" failed="$scratch/$2.failed" passed="$scratch/$2.passed" "$out" || {
		tail -n 30 "$out" >&2
		die "$1: the suite ran no checks (its output above)"
	}
	sed 's/^/  /' "$scratch/$2.failed"
}

run_ipfs_sync() {
	local repo=$scratch/repo log=$scratch/serve.log
	[[ -x $IPFS_SYNC_BIN ]] || die "no ipfs-sync at $IPFS_SYNC_BIN (make build)"
	"$IPFS_SYNC_BIN" --repo "$repo" -q import "${cars[@]}" >/dev/null
	"$IPFS_SYNC_BIN" --repo "$repo" serve --browse --listen 127.0.0.1:0 2>"$log" &
	server=$!
	local addr
	addr=$(listening "$log" '.* on http://([^/]+)/ipfs/.*' '\1')
	run_suite ipfs-sync ipfs-sync "http://$addr"
	kill "$server"
	wait "$server" 2>/dev/null || true
	server=
}

run_kubo() {
	local log=$scratch/kubo.log
	[[ -x $IPFS_BIN ]] || die "no kubo at $IPFS_BIN (make kubo)"
	export IPFS_PATH=$scratch/kubo
	"$IPFS_BIN" init --profile test >/dev/null
	for car in "${cars[@]}"; do
		"$IPFS_BIN" dag import --pin-roots=false "$car" >/dev/null
	done
	"$IPFS_BIN" daemon --offline >"$log" 2>&1 &
	server=$!
	local addr
	addr=$(listening "$log" '^Gateway server listening on /ip4/([0-9.]+)/tcp/([0-9]+).*' '\1:\2')
	run_suite "kubo $("$IPFS_BIN" version --number)" kubo "http://$addr"
	kill "$server"
	wait "$server" 2>/dev/null || true
	server=
	unset IPFS_PATH
}

case $which in
ipfs-sync) run_ipfs_sync ;;
kubo) run_kubo ;;
both)
	run_ipfs_sync
	run_kubo
	# ipfs-sync must pass as many checks as kubo and fail none it passes.
	worse=$(comm -23 "$scratch/ipfs-sync.failed" "$scratch/kubo.failed")
	if [[ -n $worse ]]; then
		die "ipfs-sync fails checks kubo passes:"$'\n'"$worse"
	fi
	if (($(cat "$scratch/ipfs-sync.passed") < $(cat "$scratch/kubo.passed"))); then
		die "ipfs-sync passes fewer checks than kubo"
	fi
	echo "conformance: ipfs-sync passes every check kubo passes"
	;;
esac
