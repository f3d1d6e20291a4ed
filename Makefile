# ipfs-sync: build, test, benchmark.
# kubo (the CID oracle for e2e tests and benchmarks) is built from the Go
# module proxy in its own module, e2e/tools, so the product's go.mod stays lean.

BIN      := $(CURDIR)/bin
GO       ?= go
E2E_ARGS ?=

.PHONY: build unit test e2e bench bench-large lint kubo clean e2e-deps

build:
	$(GO) build -o $(BIN)/ipfs-sync .

unit:
	$(GO) test ./...

# What CI runs: the fast unit tests, then the kubo-backed end-to-end tests.
test: lint unit e2e

kubo: $(BIN)/ipfs

$(BIN)/ipfs: e2e/tools/go.mod
	cd e2e/tools && GOBIN=$(BIN) $(GO) install github.com/ipfs/kubo/cmd/ipfs

# The e2e tests compare trees with rsync, as a mirror host would.
e2e-deps:
	@command -v rsync >/dev/null || { echo "e2e: installing rsync"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq rsync >/dev/null; \
	  else echo "e2e needs rsync: sudo apt-get install rsync" >&2; exit 1; fi; }

e2e: build kubo e2e-deps
	IPFS_SYNC_BIN=$(BIN)/ipfs-sync IPFS_BIN=$(BIN)/ipfs $(GO) test -tags e2e -count=1 -timeout 80m $(E2E_ARGS) ./e2e/...

# One run, side by side: import vs kubo vs the machine's floor, pushing a
# publish cycle to kubo, pulling it back vs HTTP and rsync.
bench: build kubo e2e-deps
	IPFS_SYNC_BIN=$(BIN)/ipfs-sync IPFS_BIN=$(BIN)/ipfs ./bench/run.sh
	IPFS_SYNC_BIN=$(BIN)/ipfs-sync IPFS_BIN=$(BIN)/ipfs ./bench/push.sh
	IPFS_SYNC_BIN=$(BIN)/ipfs-sync IPFS_BIN=$(BIN)/ipfs ./bench/pull.sh

# Mirror scale: mkmirror's large preset (~1M files, ~20 GiB): full import,
# one publish cycle against the floor, a 200,000-entry flat directory;
# KUBO=1 adds kubo's add and re-add (another hour and ~26 GB).
bench-large: build kubo
	IPFS_SYNC_BIN=$(BIN)/ipfs-sync IPFS_BIN=$(BIN)/ipfs ./bench/large.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/...

clean:
	rm -rf $(BIN)
