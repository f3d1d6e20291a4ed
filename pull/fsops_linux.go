package pull

import (
	"errors"
	"io"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fastpath"
)

// setMTime sets the mtime (and atime) of the file open as fd, which is
// name in dirfd, to the nanosecond, through fd. x/sys has no futimens;
// utimensat with a NULL path is what libc's is.
func setMTime(_ int, _ string, fd int, mtime int64) error {
	ts := []unix.Timespec{unix.NsecToTimespec(mtime), unix.NsecToTimespec(mtime)}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// copyRange copies n bytes from src at soff to dst at doff, in the kernel
// where it can (copy_file_range; a reflink on filesystems that have them).
func copyRange(dst int, doff int64, src int, soff int64, n int64) error {
	if !fastpath.On() {
		return copyRangeSlow(dst, doff, src, soff, n)
	}
	for n > 0 {
		k, err := unix.CopyFileRange(src, &soff, dst, &doff, int(min(n, 1<<30)), 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
				return copyRangeSlow(dst, doff, src, soff, n)
			}
			return err
		}
		if k == 0 {
			return io.ErrUnexpectedEOF
		}
		n -= int64(k)
	}
	return nil
}

// syncFS writes everything of the file system fd is on to the disk.
func syncFS(fd int) error {
	return unix.Syncfs(fd)
}
