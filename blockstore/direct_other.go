//go:build !linux

package blockstore

import (
	"errors"
	"os"
)

// Without Linux's fast paths a pack writer is never fast (fastpath.On),
// so none of these is called: packs are written with pwrite(2) through
// the page cache, and each is fsynced when sealed.

func newAIOStages(*packWriter) (stageWriter, error) { return nil, errors.ErrUnsupported }

func openDirect(string) (*os.File, error) { return nil, errors.ErrUnsupported }

func fallocate(int, int64, int64) error { return errors.ErrUnsupported }

// hugePages is Linux's MADV_HUGEPAGE (direct_linux.go).
func hugePages([]byte) {}
