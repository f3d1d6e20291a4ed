// Package diff owns walking the source tree and comparing it with the
// previous root: directory listings in a stable byte order, the entry
// filters (hidden files), and what changed between two states.
package diff

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// Entry is one child of a walked directory.
type Entry struct {
	Name   string
	Stat   metadata.Stat
	Target string // symlink target
	// Dev and Ino are the lstat's: a file opened later must be this one
	// (chunker.Source).
	Dev, Ino uint64
}

// ReadDirAt lists the children of the directory called name in the one
// open at atfd (unix.AT_FDCWD with name = dir for a whole path), never
// following a symlink there; dir is its path for messages, rel its path
// relative to the source ("" at the top) for the filter. Children come
// sorted by name as bytes (the order UnixFS uses), each lstat'ed and never
// followed. Excluded names are not lstat'ed unless a directory-only rule
// needs their type. A child that vanishes between the listing and its
// lstat is left out, as if the listing had been taken a moment later.
//
// It returns the directory's descriptor, open, for the caller to close: a
// walk opens the subdirectories relative to it, so one swapped for a
// symlink after the listing is refused, not followed.
func ReadDirAt(atfd int, name, dir, rel string, f Filter) ([]Entry, int, error) {
	// Raw descriptors rather than os.File: an os.File registers with the
	// runtime's poller and sets O_NONBLOCK, three syscalls per directory
	// that a directory never needs (~5 % of an unchanged re-sync).
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if atfd != unix.AT_FDCWD {
		flags |= unix.O_NOFOLLOW
	}
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Openat(atfd, name, flags, 0)
		return err
	})
	if err != nil {
		return nil, -1, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	entries, err := readDirFD(fd, dir, rel, f)
	if err != nil {
		unix.Close(fd)
		return nil, -1, err
	}
	return entries, fd, nil
}

func readDirFD(fd int, dir, rel string, f Filter) ([]Entry, error) {
	names, err := readNames(fd)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", dir, err)
	}
	sort.Strings(names)
	// Entries are lstat'ed relative to the directory's descriptor: the
	// kernel resolves one name instead of the whole path each time, which
	// is most of the cost of walking an unchanged tree.
	out := make([]Entry, 0, len(names))
	typed := f.needsStat()
	var st unix.Stat_t
	for _, name := range names {
		crel := name
		if rel != "" {
			crel = rel + "/" + name
		}
		if !typed && !f.Include(crel, name, false) {
			continue
		}
		err := ignoringEINTR(func() error { return unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) })
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "lstat", Path: filepath.Join(dir, name), Err: err}
		}
		e := Entry{Name: name, Stat: metadata.FromStatT(&st), Dev: uint64(st.Dev), Ino: uint64(st.Ino)}
		if typed && !f.Include(crel, name, e.Stat.Type == metadata.Dir) {
			continue
		}
		if e.Stat.Type == metadata.Symlink {
			if e.Target, err = readlinkat(fd, name, e.Stat.Size); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return nil, &fs.PathError{Op: "readlink", Path: filepath.Join(dir, name), Err: err}
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// direntBufs recycles getdents buffers between directories.
var direntBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// readNames lists the directory open at fd, without "." and "..".
func readNames(fd int) ([]string, error) {
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	buf := *bp
	var names []string
	for {
		var n int
		err := ignoringEINTR(func() (err error) { n, err = unix.ReadDirent(fd, buf); return err })
		if err != nil {
			return nil, fmt.Errorf("getdents: %w", err)
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

// readlinkat reads a symlink's target, growing the buffer when the link
// changed size since it was lstat'ed.
func readlinkat(dirfd int, name string, size int64) (string, error) {
	n := max(int(size)+1, 128)
	for {
		buf := make([]byte, n)
		var got int
		err := ignoringEINTR(func() (err error) { got, err = unix.Readlinkat(dirfd, name, buf); return err })
		if err != nil {
			return "", err
		}
		if got < n {
			return string(buf[:got]), nil
		}
		n *= 2
	}
}
