package blockstore

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// readCached reads into b what the page cache holds of the pack at off,
// without giving up the P: a raw preadv2 with RWF_NOWAIT, as the chunker
// reads source files. serve reads every block it sends, almost always
// from the page cache, and a blocking pread wakes the scheduler's monitor
// thread and may hand the P to another thread (docs/benchmarks.md#decisions).
// false: the read would wait for the disk, or came short, or RWF_NOWAIT is
// refused for this file, which then reads only with pread.
func (p *packFile) readCached(b []byte, off int64) bool {
	if len(b) == 0 || p.noWait.Load() {
		return false
	}
	iov := unix.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	r, _, e := unix.RawSyscall6(unix.SYS_PREADV2, p.fd, uintptr(unsafe.Pointer(&iov)), 1, uintptr(off), 0, unix.RWF_NOWAIT)
	switch {
	case e == 0:
		return int(r) == len(b)
	case e != unix.EAGAIN && e != unix.EINTR:
		// ENOSYS, EINVAL, EOPNOTSUPP: no RWF_NOWAIT for this file.
		p.noWait.Store(true)
	}
	return false
}
