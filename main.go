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
	// An import's garbage is short-lived chunks: fewer collections, under a
	// soft ceiling, for memory the RSS budget has (docs/benchmarks.md#decisions).
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
