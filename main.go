// Command ipfs-sync keeps a large directory tree in IPFS, re-adding only
// what changed. See docs/usage.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/ipfs-sync/ipfs-sync/cli"
)

func main() {
	// An import allocates a fresh chunk per block and keeps little alive,
	// so Go's default GC target collects every few MiB: a quarter of the
	// CPU of a full import (docs/benchmarks.md). A higher target with a
	// soft ceiling trades that for memory the RSS budget (300 MiB) has.
	// GOGC and GOMEMLIMIT still win when set.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(192 << 20)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
