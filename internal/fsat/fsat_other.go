//go:build !linux

package fsat

import (
	"errors"

	"golang.org/x/sys/unix"
)

func openat(at int, name string, flags int, perm uint32) (int, error) {
	return unix.Openat(at, name, flags, perm)
}

// Close closes fd, a file or directory opened for reading.
func Close(fd int) error { return unix.Close(fd) }

// Fstat fills st with the stat of the open file fd.
func Fstat(fd int, st *unix.Stat_t) error {
	return retry(func() error { return unix.Fstat(fd, st) })
}

// SetMTime sets the mtime (and atime) of the file open as fd, which is
// name below at, to ns nanoseconds since the epoch, by name: x/sys has no
// futimens here, and futimes(2) keeps only microseconds.
func SetMTime(at int, name string, _ int, ns int64) error {
	return SetMTimeAt(at, name, ns)
}

// CopyRange copies n bytes from src at soff to dst at doff, through a
// buffer.
func CopyRange(dst int, doff int64, src int, soff int64, n int64) error {
	return copyThrough(dst, doff, src, soff, n)
}

// SyncFS is never called: without the Linux fast paths (fastpath.On)
// each file and directory is fsynced as it is written instead.
func SyncFS(int) error { return errors.ErrUnsupported }

// BirthTime is 0 where statx(2) is not there.
func BirthTime(int) int64 { return 0 }

// parseDirents appends the names of a getdents buffer to out, their types
// unknown (the record's layout differs between platforms).
func parseDirents(buf []byte, out []Dirent) []Dirent {
	_, _, names := unix.ParseDirent(buf, -1, nil)
	for _, n := range names {
		out = append(out, Dirent{Name: n, Type: unix.DT_UNKNOWN})
	}
	return out
}

// PreadNoWait is Linux's preadv2 with RWF_NOWAIT (fsat_linux.go): here
// every read is a pread.
func PreadNoWait(uintptr, []byte, int64) (int, error) { return -1, ErrNoWait }
