package chunker

import (
	"errors"
	"io"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fastpath"
	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// File is a source file open for import: its bytes in order, and the
// stat of the open file (taken before and after reading, to see a change).
type File interface {
	io.ReadCloser
	Stat() (metadata.Stat, error)
}

// source is a file read by descriptor, not through os.File, so that a
// read the page cache answers keeps the worker's P: on Linux it is a raw
// preadv2 with RWF_NOWAIT (readCached), and only a read that must
// wait for the disk is a blocking pread(2), after which the worker waits
// to get a P back (docs/benchmarks.md#decisions). os.File would also
// register every file with the poller, one failing epoll_ctl each.
type source struct {
	fd   int
	path string
	off  int64
	// noWait: every read is a pread: RWF_NOWAIT is refused here (old
	// kernel, some file systems), or there are no fast paths.
	noWait bool
	// opened is the fstat OpenAt took to check the file's identity, and
	// dev, ino and ctime the rest of it that is kept: the first Stat
	// answers it (nothing happened to the file in between that a second
	// fstat would see), and ChangeTime always does, saving two fstats of
	// every file read.
	opened   metadata.Stat
	dev, ino uint64
	ctime    int64
	stated   bool // the first Stat has answered opened
}

// Source is a file to open for import: Name in the directory open as
// Dir, the walk's descriptor (unix.AT_FDCWD: Name is the path the user
// gave), Path for messages, and the device and inode the walk's lstat
// found there. NoLstat: the walk took none (Dev and Ino are 0), so the
// file is the one the open finds, its identity its descriptor's. With
// NoCopy, its leaves are stored as references to its bytes where the DAG
// takes them (LeafReferrer), naming the file's change time as its open
// descriptor has it (CTime, the walk's until then).
type Source struct {
	Dir      int
	Name     string
	Path     string
	Dev, Ino uint64
	NoLstat  bool
	NoCopy   bool
	CTime    int64
}

// relisted is s with the identity of the file now at its name, as a
// listing taken now would find it.
func (s Source) relisted() (Source, error) {
	var st unix.Stat_t
	if err := fsat.Lstat(s.Dir, s.Name, &st); err != nil {
		return s, &fs.PathError{Op: "lstat", Path: s.Path, Err: err}
	}
	s.Dev, s.Ino = uint64(st.Dev), uint64(st.Ino)
	return s, nil
}

// OpenAt opens s read-only relative to its directory's descriptor, never
// following a symlink there: a directory on the way swapped for a symlink
// after the listing (pool/ -> /etc) is not on the way any more, and a
// file swapped for one is refused (ELOOP). O_NONBLOCK: a file swapped for
// a FIFO does not hang the open; it has no effect on a regular file. The
// file opened must be the one listed (its device and inode; any, with
// NoLstat), else the error is ErrReplaced.
func OpenAt(s Source) (File, error) {
	fd, err := fsat.Open(s.Dir, s.Name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: s.Path, Err: err}
	}
	var st unix.Stat_t
	if err := fsat.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "stat", Path: s.Path, Err: err}
	}
	if !s.NoLstat && (uint64(st.Dev) != s.Dev || uint64(st.Ino) != s.Ino) {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: s.Path, Err: ErrReplaced}
	}
	return &source{fd: fd, path: s.Path, noWait: !fastpath.On(), opened: metadata.FromStatT(&st), dev: uint64(st.Dev), ino: uint64(st.Ino), ctime: st.Ctim.Nano()}, nil
}

// readCached reads into p what the page cache holds at f.off, without
// giving up the P (fsat.PreadNoWait). -1: the read would have to wait for
// the disk (or was interrupted), or RWF_NOWAIT is refused for this file,
// which then reads only with pread.
func (f *source) readCached(p []byte) int {
	n, err := fsat.PreadNoWait(uintptr(f.fd), p, f.off)
	if err != nil {
		f.noWait = true
	}
	return n
}

func (f *source) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := -1, error(nil)
	if !f.noWait {
		n = f.readCached(p)
	}
	for n < 0 {
		if n, err = unix.Pread(f.fd, p, f.off); errors.Is(err, unix.EINTR) {
			n = -1
			continue
		}
		if err != nil {
			return 0, &fs.PathError{Op: "read", Path: f.path, Err: err}
		}
	}
	if n == 0 {
		return 0, io.EOF
	}
	f.off += int64(n)
	return n, nil
}

func (f *source) Stat() (metadata.Stat, error) {
	if !f.stated {
		f.stated = true
		return f.opened, nil
	}
	var s unix.Stat_t
	if err := fsat.Fstat(f.fd, &s); err != nil {
		return metadata.Stat{}, &fs.PathError{Op: "stat", Path: f.path, Err: err}
	}
	return metadata.FromStatT(&s), nil
}

// ChangeTime is the open file's change time (ns) when it was opened, as
// the first Stat has it.
func (f *source) ChangeTime() int64 { return f.ctime }

// Identity is the open file's device and inode.
func (f *source) Identity() (dev, ino uint64) {
	return f.dev, f.ino
}

// identified is s with the identity of the file f, opened from it, where
// the walk knew none (NoLstat): f's own, or for a File that does not tell
// it (a test's wrapper), the file's at s's name.
func identified(s Source, f File) (Source, error) {
	if !s.NoLstat {
		return s, nil
	}
	if id, ok := f.(interface{ Identity() (uint64, uint64) }); ok {
		s.Dev, s.Ino = id.Identity()
		return s, nil
	}
	return s.relisted()
}

func (f *source) Close() error {
	if err := fsat.Close(f.fd); err != nil {
		return &fs.PathError{Op: "close", Path: f.path, Err: err}
	}
	return nil
}
