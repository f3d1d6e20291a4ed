// Package fsat owns the file-system calls ipfs-sync makes through raw
// descriptors, the *at(2) calls at their heart: an entry opened, lstat'ed,
// listed or given its mtime relative to the descriptor of the directory
// it is in, never through a joined path (a directory on the way swapped
// for a symlink after it was opened leads nowhere), and whole reads,
// writes and copies at an offset of an open file. Raw descriptors rather
// than os.File: an os.File registers with the runtime's poller, syscalls
// that a directory, or a file read at an offset, never needs. Each call
// retries EINTR.
//
// The calls are portable (golang.org/x/sys/unix); the Linux fast paths
// (a raw fstat, futimens, copy_file_range, syncfs, statx) are in
// fsat_linux.go, the portable versions in fsat_other.go.
package fsat

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Open opens name below the directory open as at (unix.AT_FDCWD: name is
// a path), close-on-exec. Callers that must not follow a symlink as the
// last component pass unix.O_NOFOLLOW, as OpenDir does.
func Open(at int, name string, flags int, perm uint32) (int, error) {
	var fd int
	err := retry(func() (err error) {
		fd, err = openat(at, name, flags|unix.O_CLOEXEC, perm)
		return err
	})
	return fd, err
}

// OpenDir opens the directory name below at for listing and for opening
// below it, refusing a symlink (ELOOP) and anything else that is not a
// directory (ENOTDIR).
func OpenDir(at int, name string) (int, error) {
	return Open(at, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
}

// Lstat fills st with the lstat of name below at, not following a symlink.
func Lstat(at int, name string, st *unix.Stat_t) error {
	return retry(func() error { return unix.Fstatat(at, name, st, unix.AT_SYMLINK_NOFOLLOW) })
}

// direntBufs recycles getdents buffers between directories.
var direntBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// ReadNames lists the directory open as fd, without "." and "..", in the
// order the file system gives, from its start whatever was read from fd
// before.
func ReadNames(fd int) ([]string, error) {
	var names []string
	if err := readDir(fd, func(buf []byte) { _, _, names = syscall.ParseDirent(buf, -1, names) }); err != nil {
		return nil, err
	}
	return names, nil
}

// readDir reads the directory open as fd from its start, handing each
// buffer getdents fills to parse.
func readDir(fd int, parse func(buf []byte)) error {
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		return fmt.Errorf("lseek: %w", err)
	}
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	buf := *bp
	for {
		var n int
		err := retry(func() (err error) { n, err = unix.ReadDirent(fd, buf); return err })
		if err != nil {
			return fmt.Errorf("getdents: %w", err)
		}
		if n <= 0 {
			return nil
		}
		parse(buf[:n])
	}
}

// Dirent is a name of a listing with its type as the listing gives it:
// unix.DT_REG, unix.DT_DIR, ..., or unix.DT_UNKNOWN where the file system
// (or the platform) gives none, which only an lstat can tell then.
type Dirent struct {
	Name string
	Type uint8
}

// ReadDirents is ReadNames with each name's type from the listing, which
// spares an lstat where the type is all a caller needs.
func ReadDirents(fd int) ([]Dirent, error) {
	var out []Dirent
	if err := readDir(fd, func(buf []byte) { out = parseDirents(buf, out) }); err != nil {
		return nil, err
	}
	return out, nil
}

// Readlink reads the target of the symlink name below at, which had size
// bytes when it was lstat'ed; the buffer grows if it has grown since.
func Readlink(at int, name string, size int64) (string, error) {
	n := max(int(size)+1, 128)
	for {
		buf := make([]byte, n)
		var got int
		err := retry(func() (err error) { got, err = unix.Readlinkat(at, name, buf); return err })
		if err != nil {
			return "", err
		}
		if got < n {
			return string(buf[:got]), nil
		}
		n *= 2
	}
}

// SetMTimeAt sets the mtime (and atime) of name below at to ns nanoseconds
// since the epoch; a symlink's own, never its target's.
func SetMTimeAt(at int, name string, ns int64) error {
	ts := []unix.Timespec{unix.NsecToTimespec(ns), unix.NsecToTimespec(ns)}
	return retry(func() error { return unix.UtimesNanoAt(at, name, ts, unix.AT_SYMLINK_NOFOLLOW) })
}

// PwriteAll writes all of b at off.
func PwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// PreadFull reads len(b) bytes at off; a file that ends before is
// io.ErrUnexpectedEOF.
func PreadFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pread(fd, b, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// copyThrough copies n bytes from src at soff to dst at doff through a
// buffer: the portable CopyRange, and Linux's where the kernel's is
// refused.
func copyThrough(dst int, doff int64, src int, soff int64, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		b := buf[:min(n, int64(len(buf)))]
		if err := PreadFull(src, b, soff); err != nil {
			return err
		}
		if err := PwriteAll(dst, b, doff); err != nil {
			return err
		}
		soff, doff, n = soff+int64(len(b)), doff+int64(len(b)), n-int64(len(b))
	}
	return nil
}

func retry(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

// ErrNoWait is PreadNoWait's: no read without waiting here.
var ErrNoWait = errors.New("no RWF_NOWAIT reads")
