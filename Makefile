# ipfs-sync: build, test, benchmark.
# kubo (the CID oracle for e2e tests and benchmarks) is built from the Go
# module proxy in its own module, e2e/tools, so the product's go.mod stays lean.

BIN      := $(CURDIR)/bin
GO       ?= go
E2E_ARGS ?=

.PHONY: build mkmirror unit test test-long race e2e bench bench-large lint kubo cluster clean e2e-deps bench-deps

build:
	$(GO) build -o $(BIN)/ipfs-sync .

# The synthetic package mirror the benchmarks run on (internal/mirrorgen).
mkmirror:
	$(GO) build -o $(BIN)/mkmirror ./internal/mirrorgen/cmd/mkmirror

# The unit tests come in tiers (internal/testtier): plain `go test ./...`,
# which `make unit` runs, is the fast one, the whole module in under a minute
# on two cores; IPFS_SYNC_LONG=1 adds the long randomised sequences and the
# inputs of 100 MB and more (make test-long); -short is the smallest, for the
# race detector (make race). An env var, not -short, marks the long tier so
# that plain `go test ./...` is the fast one.
#
# Each stage's go test runs under gotestsum, built from tools/ as kubo is
# from e2e/tools: go test's own output, then the skipped tests with their
# reasons and any failures; it exits non-zero if go test did or a test failed.
REPORT  := $(BIN)/test-report
TESTSUM  = $(BIN)/gotestsum --format standard-quiet --jsonfile $(REPORT)/$@.json $(SUMMARY) --raw-command -- $(GO) test -json

unit: $(BIN)/gotestsum | $(REPORT)
	$(TESTSUM) ./...

test-long: $(BIN)/gotestsum | $(REPORT)
	IPFS_SYNC_LONG=1 $(TESTSUM) ./...

# The packages whose goroutines share state.
race: $(BIN)/gotestsum | $(REPORT)
	$(TESTSUM) -race -short ./blockstore/ ./sync/ ./pull/ ./gateway/

# What CI runs: lint, the long tier of the unit tests, the race detector,
# the kubo-backed end-to-end tests; last, each stage's skipped tests and
# why (root, loop devices, strace missing...), so a green run that skipped
# tests reads as one.
TEST_STAGES := test-long race e2e
test: SUMMARY := --hide-summary=skipped
test: lint $(TEST_STAGES)
	@for s in $(TEST_STAGES); do echo; echo "== skipped in make $$s"; \
	  $(BIN)/gotestsum --format none --raw-command -- cat $(REPORT)/$$s.json || exit 1; done

$(BIN)/gotestsum: tools/go.mod
	cd tools && GOBIN=$(BIN) $(GO) install gotest.tools/gotestsum

$(REPORT):
	mkdir -p $@

kubo: $(BIN)/ipfs

$(BIN)/ipfs: e2e/tools/go.mod
	cd e2e/tools && GOBIN=$(BIN) $(GO) install github.com/ipfs/kubo/cmd/ipfs

# IPFS Cluster, the peers the cluster hand-off tests and benchmark start, in
# a module of its own: its libp2p need not agree with kubo's.
cluster: $(BIN)/ipfs-cluster-service $(BIN)/ipfs-cluster-ctl

$(BIN)/ipfs-cluster-service $(BIN)/ipfs-cluster-ctl: e2e/clustertools/go.mod
	cd e2e/clustertools && GOBIN=$(BIN) $(GO) install github.com/ipfs-cluster/ipfs-cluster/cmd/$(@F)

# The e2e tests compare trees with rsync, as a mirror host would, and count
# the files a sync opens with strace (without it, that check is skipped);
# the reflink tests make an XFS image with xfsprogs (skipped without it).
e2e-deps:
	@missing=; for c in rsync strace; do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	command -v mkfs.xfs >/dev/null || missing="$$missing xfsprogs"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "e2e: installing$$missing"; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	  elif ! command -v rsync >/dev/null; then echo "e2e needs rsync: sudo apt-get install rsync" >&2; exit 1; fi; fi

CLUSTER_ENV = IPFS_CLUSTER_SERVICE_BIN=$(BIN)/ipfs-cluster-service IPFS_CLUSTER_CTL_BIN=$(BIN)/ipfs-cluster-ctl

e2e: build kubo cluster e2e-deps $(BIN)/gotestsum | $(REPORT)
	IPFS_SYNC_BIN=$(BIN)/ipfs-sync IPFS_BIN=$(BIN)/ipfs $(CLUSTER_ENV) $(TESTSUM) -tags e2e -count=1 -timeout 80m $(E2E_ARGS) ./e2e/...

# One run, side by side: import vs kubo vs the machine's floor, pushing a
# publish cycle to kubo, pulling it back vs HTTP and rsync, serving every
# file by path vs nginx and from a --nocopy repository vs a copying one, and
# the storages (copy, --nocopy, --nocopy=reflink) on a loop-mounted XFS with
# reflinks (root only).
BENCH_ENV = IPFS_SYNC_BIN=$(BIN)/ipfs-sync IPFS_BIN=$(BIN)/ipfs MKMIRROR=$(BIN)/mkmirror

# The bench scripts read peak RSS from GNU time; bench/serve.sh fetches
# with curl, from serve and from nginx.
bench-deps:
	@missing=; /usr/bin/time -f %M true >/dev/null 2>&1 || missing=" time"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "bench: installing$$missing"; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	  else echo "bench needs$$missing: sudo apt-get install$$missing" >&2; exit 1; fi; fi

bench: build kubo cluster mkmirror e2e-deps bench-deps
	$(BENCH_ENV) ./bench/run.sh
	$(BENCH_ENV) ./bench/push.sh
	$(BENCH_ENV) $(CLUSTER_ENV) ./bench/cluster.sh
	$(BENCH_ENV) ./bench/pull.sh
	$(BENCH_ENV) ./bench/serve.sh
	$(BENCH_ENV) ./bench/nocopy.sh
	$(BENCH_ENV) ./bench/nocopy-serve.sh
	$(BENCH_ENV) ./bench/reflink.sh

# Mirror scale: mkmirror's large preset (~1M files, ~20 GiB): full import,
# one publish cycle against the floor, a 200,000-entry flat directory;
# KUBO=1 adds kubo's add and re-add (another hour and ~26 GB).
bench-large: build kubo mkmirror e2e-deps bench-deps
	$(BENCH_ENV) ./bench/large.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/...
	@# Every platform it must build on, tests included (tested on linux/amd64).
	@for p in linux/amd64 linux/arm64 darwin/arm64; do \
	  echo "GOOS=$${p%/*} GOARCH=$${p#*/}: go build ./..., go vet ./... and -tags e2e ./e2e/..."; \
	  (export GOOS=$${p%/*} GOARCH=$${p#*/}; $(GO) build ./... && $(GO) vet ./... && $(GO) vet -tags e2e ./e2e/...) || exit 1; \
	done

clean:
	rm -rf $(BIN)
