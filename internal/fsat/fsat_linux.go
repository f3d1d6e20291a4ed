package fsat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fastpath"
)

// openat is unix.Openat with the name made NUL-terminated on the stack
// where it fits (x/sys copies every name to the heap, an allocation for
// each file an import opens), and first tried without giving up the P:
// a raw openat2 with RESOLVE_CACHED, which fails at once where the name
// is not in the dentry cache rather than wait for the disk. As for
// PreadNoWait: a blocking call wakes the scheduler's monitor thread and
// may hand the P to another thread, and an import opens every file.
func openat(at int, name string, flags int, perm uint32) (int, error) {
	var buf [256]byte
	if len(name) >= len(buf) || strings.IndexByte(name, 0) >= 0 {
		return unix.Openat(at, name, flags, perm)
	}
	copy(buf[:], name)
	p := uintptr(unsafe.Pointer(&buf[0]))
	if flags&(unix.O_CREAT|unix.O_TRUNC) == 0 && flags&unix.O_TMPFILE != unix.O_TMPFILE && perm == 0 && !noCachedOpen.Load() {
		how := unix.OpenHow{Flags: uint64(flags), Resolve: resolveCached}
		fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT2, uintptr(at), p, uintptr(unsafe.Pointer(&how)), unsafe.Sizeof(how), 0, 0)
		switch e {
		case 0:
			return int(fd), nil
		case unix.ENOSYS, unix.EINVAL:
			// openat2 (5.6) or RESOLVE_CACHED (5.12) is not there.
			noCachedOpen.Store(true)
		case unix.EAGAIN, unix.EINTR:
		default:
			return -1, e
		}
	}
	fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(at), p, uintptr(flags), uintptr(perm), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// Close closes fd, a file or directory opened for reading, by a raw
// system call: such a close does no I/O, and an import closes every file
// it reads (see openat).
func Close(fd int) error {
	if _, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0); e != 0 {
		return e
	}
	return nil
}

// resolveCached is RESOLVE_CACHED of linux/openat2.h, which x/sys lacks.
const resolveCached = 0x20

// noCachedOpen: openat2 with RESOLVE_CACHED is refused here, or the fast
// paths are off.
var noCachedOpen atomic.Bool

func init() { noCachedOpen.Store(!fastpath.On()) }

// Fstat fills st with the stat of the open file fd, by a raw system call:
// fstat of an open file reads no disk, so there is no reason to give up
// the P.
func Fstat(fd int, st *unix.Stat_t) error {
	if _, _, e := unix.RawSyscall(unix.SYS_FSTAT, uintptr(fd), uintptr(unsafe.Pointer(st)), 0); e != 0 {
		return syscall.Errno(e)
	}
	return nil
}

// SetMTime sets the mtime (and atime) of the file open as fd, which is
// name below at, to ns nanoseconds since the epoch, through fd. x/sys has
// no futimens; utimensat with a NULL path is what libc's is.
func SetMTime(_ int, _ string, fd int, ns int64) error {
	ts := []unix.Timespec{unix.NsecToTimespec(ns), unix.NsecToTimespec(ns)}
	return retry(func() error {
		if _, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0); e != 0 {
			return e
		}
		return nil
	})
}

// CopyRange copies n bytes from src at soff to dst at doff, in the kernel
// where it can (copy_file_range; a reflink on file systems that have
// them), through a buffer where the kernel refuses or the fast paths are
// off.
func CopyRange(dst int, doff int64, src int, soff int64, n int64) error {
	if !fastpath.On() {
		return copyThrough(dst, doff, src, soff, n)
	}
	for n > 0 {
		k, err := unix.CopyFileRange(src, &soff, dst, &doff, int(min(n, 1<<30)), 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
				return copyThrough(dst, doff, src, soff, n)
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

// SyncFS writes everything of the file system fd is on to the disk.
func SyncFS(fd int) error {
	return retry(func() error { return unix.Syncfs(fd) })
}

// BirthTime is when the file open as fd was created (statx(2)), in
// nanoseconds since the epoch; 0 if its file system does not keep it.
func BirthTime(fd int) int64 {
	var stx unix.Statx_t
	if unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_BTIME, &stx) != nil || stx.Mask&unix.STATX_BTIME == 0 {
		return 0
	}
	return stx.Btime.Sec*1e9 + int64(stx.Btime.Nsec)
}

// parseDirents appends the entries of a getdents64(2) buffer to out, but
// "." and "..": each a struct linux_dirent64 (inode, offset, record
// length, type, then the name, NUL-terminated and padded).
func parseDirents(buf []byte, out []Dirent) []Dirent {
	const nameOff = 19 // d_ino 8, d_off 8, d_reclen 2, d_type 1
	for len(buf) >= nameOff {
		reclen := int(binary.NativeEndian.Uint16(buf[16:18]))
		if reclen < nameOff || reclen > len(buf) {
			break
		}
		name := buf[nameOff:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if !(len(name) == 1 && name[0] == '.') && !(len(name) == 2 && name[0] == '.' && name[1] == '.') {
			out = append(out, Dirent{Name: string(name), Type: buf[18]})
		}
		buf = buf[reclen:]
	}
	return out
}

// PreadNoWait reads into b what the page cache holds of fd at off without
// giving up the P: a raw preadv2 with RWF_NOWAIT. An import and a server
// read almost everything from the page cache, and a blocking pread wakes
// the scheduler's monitor thread and may hand the P to another thread
// (docs/benchmarks.md#decisions). It returns the bytes read; -1 and nil
// if the read would wait for the disk (or was interrupted), -1 and
// ErrNoWait if RWF_NOWAIT is refused for this file (an old kernel, some
// file systems): read it with pread.
func PreadNoWait(fd uintptr, b []byte, off int64) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	iov := unix.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	r, _, e := unix.RawSyscall6(unix.SYS_PREADV2, fd, uintptr(unsafe.Pointer(&iov)), 1, uintptr(off), 0, unix.RWF_NOWAIT)
	switch e {
	case 0:
		return int(r), nil
	case unix.EAGAIN, unix.EINTR:
		return -1, nil
	}
	return -1, ErrNoWait
}
