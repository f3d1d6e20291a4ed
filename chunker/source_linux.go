package chunker

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// readCached reads into p what the page cache holds at f.off, without
// giving up the P: a raw preadv2 with RWF_NOWAIT. -1: the read would have
// to wait for the disk (or was interrupted), or RWF_NOWAIT is refused for
// this file, which then reads only with pread.
func (f *source) readCached(p []byte) int {
	iov := unix.Iovec{Base: &p[0]}
	iov.SetLen(len(p))
	r, _, e := unix.RawSyscall6(unix.SYS_PREADV2, uintptr(f.fd), uintptr(unsafe.Pointer(&iov)), 1, uintptr(f.off), 0, unix.RWF_NOWAIT)
	switch {
	case e == 0:
		return int(r)
	case e != unix.EAGAIN && e != unix.EINTR:
		// ENOSYS, EINVAL, EOPNOTSUPP: no RWF_NOWAIT for this file.
		f.noWait = true
	}
	return -1
}
