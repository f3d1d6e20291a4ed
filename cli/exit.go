package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/cluster"
	"github.com/ipfs-sync/ipfs-sync/pinsvc"
	"github.com/ipfs-sync/ipfs-sync/sync"
)

// Exit codes, documented in --help and docs/usage.md.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitPartial     = 3
	ExitLocked      = 4
	ExitHandOff     = 5
	ExitPinFailed   = 6
	ExitInterrupted = 130
)

// usageError marks a mistake in how the command was called.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// handOffError is a sync that recorded its root but could not hand it to
// kubo (--api), to the pinning service after it, or to the cluster
// (--cluster): the ref has moved, the root is on stdout.
type handOffError struct {
	root string
	to   string // "" for kubo
	name string // the ref's name, which is the pin's name at the service
	err  error
}

func (e handOffError) Error() string {
	if e.to == "the cluster" {
		return fmt.Sprintf("synced %s (the ref has moved), but handing it to the cluster failed: %v; 'ipfs-sync push --name %q %s' with the same --cluster retries", e.root, e.err, e.name, e.root)
	}
	if e.to != "" {
		return fmt.Sprintf("synced %s (the ref has moved) and pushed it to kubo, but handing it to %s failed: %v; 'ipfs-sync push --name %q %s' with the same --api and --pinning-service retries", e.root, e.to, e.err, e.name, e.root)
	}
	return fmt.Sprintf("synced %s (the ref has moved), but handing it to kubo failed: %v; 'ipfs-sync push %s' with the same --api retries", e.root, e.err, e.root)
}

func (e handOffError) Unwrap() error { return e.err }

// exitCode maps an error to the process exit code; the one place that does.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.Is(err, pinsvc.ErrFailed), errors.Is(err, pinsvc.ErrTimeout), errors.Is(err, cluster.ErrNotPinned):
		return ExitPinFailed
	case errors.As(err, &handOffError{}):
		return ExitHandOff
	case errors.Is(err, blockstore.ErrLocked):
		return ExitLocked
	case errors.Is(err, sync.ErrPartial):
		return ExitPartial
	}
	return ExitError
}

const exitHelp = `EXIT STATUS:
   0    success
   1    error; no ref was moved, the previous root stays valid
   2    usage error
   3    partial: a root was recorded, but some entries were skipped (warned on stderr)
   4    the repository is locked by another ipfs-sync process
   5    sync --api or --cluster: a root was recorded (the ref moved, the CID is on stdout),
        but handing it to kubo or the cluster failed; 'ipfs-sync push ROOT' retries
   6    --pinning-service: the pinning service reports the pin as failed, or with --wait
        has not finished it within --wait-timeout (for sync, the root was recorded and
        handed to kubo); running the same command again asks anew for a failed pin, and
        waits anew for one still queued or pinning.
        --cluster with --wait: the root is pinned in the cluster but was not PINNED on
        --replication-min peers within --wait-timeout; the previous root stays pinned,
        and running the same command again sends nothing and waits anew
   130  interrupted`
