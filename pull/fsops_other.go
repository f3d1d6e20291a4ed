//go:build !linux

package pull

import "errors"

// setMTime sets the mtime (and atime) of the file open as fd, which is
// name in dirfd, to the nanosecond, by name: x/sys has no futimens here,
// and futimes(2) keeps only microseconds.
func setMTime(dirfd int, name string, _ int, mtime int64) error {
	return lutimesAt(dirfd, name, mtime)
}

func copyRange(dst int, doff int64, src int, soff int64, n int64) error {
	return copyRangeSlow(dst, doff, src, soff, n)
}

// syncFS is never called: without the Linux fast paths (fastpath.On) a
// pull fsyncs each file and directory it writes instead.
func syncFS(int) error { return errors.ErrUnsupported }
