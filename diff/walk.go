// Package diff owns walking the source tree and comparing it with the
// previous root: directory listings in a stable byte order, the entry
// filters (hidden files), and what changed between two states.
package diff

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
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
	// CTime is the lstat's change time (ns) whatever the type (Stat's is
	// a directory's only): a file a --nocopy sync referenced must not
	// have changed in any way since.
	CTime int64
	// NoLstat says a regular file was taken for one on the listing's word,
	// without an lstat (ReadDirAt's lstatFiles false): Stat has its type
	// alone, and Dev, Ino and CTime are 0. Its open descriptor's fstat
	// tells the rest (chunker.Source.NoLstat).
	NoLstat bool
}

// ReadDirAt lists the children of the directory called name in the one
// open at atfd (unix.AT_FDCWD with name = dir for a whole path), never
// following a symlink there; dir is its path for messages, rel its path
// relative to the source ("" at the top) for the filter. Children come
// sorted by name as bytes (the order UnixFS uses), each lstat'ed and never
// followed. Excluded names are not lstat'ed unless a directory-only rule
// needs their type. Without lstatFiles, neither is a regular file whose
// type the listing gives (Entry.NoLstat): a walk that compares no file
// with a previous version reads what it needs of one from its open
// descriptor, and the lstat was a tenth of a first import's CPU time. A
// child that vanishes between the listing and its lstat is left out, as
// if the listing had been taken a moment later.
//
// It returns the directory's descriptor, open, for the caller to close: a
// walk opens the subdirectories relative to it, so one swapped for a
// symlink after the listing is refused, not followed.
func ReadDirAt(atfd int, name, dir, rel string, f Filter, lstatFiles bool) ([]Entry, int, error) {
	// Raw descriptors rather than os.File: an os.File registers with the
	// runtime's poller and sets O_NONBLOCK, three syscalls per directory
	// that a directory never needs (~5 % of an unchanged re-sync).
	flags := unix.O_RDONLY | unix.O_DIRECTORY
	if atfd != unix.AT_FDCWD {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := fsat.Open(atfd, name, flags, 0)
	if err != nil {
		return nil, -1, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	entries, err := readDirFD(fd, dir, rel, f, lstatFiles)
	if err != nil {
		unix.Close(fd)
		return nil, -1, err
	}
	return entries, fd, nil
}

func readDirFD(fd int, dir, rel string, f Filter, lstatFiles bool) ([]Entry, error) {
	ents, err := fsat.ReadDirents(fd)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", dir, err)
	}
	slices.SortFunc(ents, func(a, b fsat.Dirent) int { return strings.Compare(a.Name, b.Name) })
	// Entries are lstat'ed relative to the directory's descriptor: the
	// kernel resolves one name instead of the whole path each time, which
	// is most of the cost of walking an unchanged tree.
	out := make([]Entry, 0, len(ents))
	typed := f.needsStat()
	for _, de := range ents {
		name := de.Name
		crel := name
		if rel != "" {
			crel = rel + "/" + name
		}
		if !typed && !f.Include(crel, name, false) {
			continue
		}
		if !lstatFiles && de.Type == unix.DT_REG {
			if !typed || f.Include(crel, name, false) {
				out = append(out, Entry{Name: name, Stat: metadata.Stat{Type: metadata.File}, NoLstat: true})
			}
			continue
		}
		e, ok, err := lstatEntry(fd, dir, name)
		if err != nil {
			return nil, err
		}
		if !ok || (typed && !f.Include(crel, name, e.Stat.Type == metadata.Dir)) {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// lstatEntry is the entry name of the directory open as fd (dir for
// messages), and a symlink's target; ok false: it is gone.
func lstatEntry(fd int, dir, name string) (e Entry, ok bool, err error) {
	var st unix.Stat_t
	err = fsat.Lstat(fd, name, &st)
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, &fs.PathError{Op: "lstat", Path: filepath.Join(dir, name), Err: err}
	}
	e = Entry{Name: name, Stat: metadata.FromStatT(&st), Dev: uint64(st.Dev), Ino: uint64(st.Ino), CTime: st.Ctim.Nano()}
	if e.Stat.Type == metadata.Symlink {
		if e.Target, err = fsat.Readlink(fd, name, e.Stat.Size); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return Entry{}, false, nil
			}
			return Entry{}, false, &fs.PathError{Op: "readlink", Path: filepath.Join(dir, name), Err: err}
		}
	}
	return e, true, nil
}
