//go:build !linux

package chunker

import "golang.org/x/sys/unix"

// readCached is Linux's (source_linux.go); elsewhere a source is opened
// with noWait set, so this is never called.
func (f *source) readCached([]byte) int {
	f.noWait = true
	return -1
}

func fstat(fd int, s *unix.Stat_t) error {
	return unix.Fstat(fd, s)
}
