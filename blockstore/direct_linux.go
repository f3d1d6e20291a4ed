package blockstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// The pack writer's other Linux calls, used only with the fast paths on
// (packWriter.fast): O_DIRECT and fallocate(2).

// openDirect opens the pack at path again, for writing with O_DIRECT.
func openDirect(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
}

// fallocate allocates n bytes of fd's file from off.
func fallocate(fd int, off, n int64) error {
	return unix.Fallocate(fd, 0, off, n)
}

// hugePages asks for b's pages to be huge ones (THP is madvise-only by
// default).
func hugePages(b []byte) { _ = unix.Madvise(b, unix.MADV_HUGEPAGE) }
