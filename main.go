// Command ipfs-sync keeps a large directory tree in IPFS, re-adding only
// what changed. See docs/usage.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ipfs-sync/ipfs-sync/cli"
	// The descriptor table grown, and the collector's target set, while
	// or before the other packages initialise.
	_ "github.com/ipfs-sync/ipfs-sync/internal/fdtable"
	_ "github.com/ipfs-sync/ipfs-sync/internal/gctune"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
