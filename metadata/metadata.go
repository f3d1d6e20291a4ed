// Package metadata owns what ipfs-sync knows about one filesystem entry and
// how it maps onto UnixFS: the entry type, size, the mode bits UnixFS can
// hold (permissions, setuid, setgid, sticky) and the mtime to the
// nanosecond. It is the one place that defines "the same entry".
package metadata

import (
	"fmt"
	"io/fs"
	"time"

	"golang.org/x/sys/unix"
)

// Type is the kind of a filesystem entry, as UnixFS can store it.
type Type uint8

// Entry types. Other covers FIFOs, sockets and devices, which UnixFS cannot
// represent and which are skipped with a warning. None, the zero Type, is
// no entry at all: the Stat of a name that is not there.
const (
	None Type = iota
	File
	Dir
	Symlink
	Other
)

func (t Type) String() string {
	switch t {
	case File:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	case None:
		return "none"
	}
	return "special"
}

// Stat is an entry as UnixFS sees it, and as pull's quick check of what it
// wrote compares it.
type Stat struct {
	Type  Type
	Size  int64       // bytes for files, target length for symlinks, 0 for directories
	Mode  fs.FileMode // type bit plus permissions, setuid, setgid, sticky
	MTime time.Time   // full nanosecond precision, UTC
	// CTime is a directory's change time in ns since the epoch (0 for
	// other entries, and from FromFileInfo). UnixFS stores none, but an
	// entry added, removed or renamed in the directory, a chmod or utimes
	// of it, each moves it and nothing sets it back: pull's record of a
	// directory it wrote holds it. A file's is left out: a copy of a tree
	// made elsewhere keeps sizes and mtimes, and should pass the quick
	// check there.
	CTime int64
}

// FromFileInfo converts an Lstat result.
func FromFileInfo(fi fs.FileInfo) Stat {
	m := fi.Mode()
	st := Stat{
		Size:  fi.Size(),
		Mode:  m & (fs.ModeType | fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
		MTime: fi.ModTime().UTC(),
	}
	switch {
	case m.IsRegular():
		st.Type = File
	case m.IsDir():
		st.Type, st.Size = Dir, 0
	case m&fs.ModeSymlink != 0:
		st.Type = Symlink
	default:
		st.Type = Other
	}
	return st
}

// Same reports whether an open file still has the size and mtime seen when
// it was walked: the check that a file did not change while it was read.
func Same(a, b Stat) bool {
	return a.Type == b.Type && a.Size == b.Size && a.MTime.Equal(b.MTime)
}

// Fields says which metadata a DAG stores. It decides the mode and mtime
// passed to UnixFS: zero values mean "not stored", exactly as kubo's
// --preserve-mode and --preserve-mtime do.
type Fields struct {
	Mode  bool
	MTime bool
}

// ModeOf is the mode to store for st, or 0 when modes are not stored.
// Symlinks never carry a mode: kubo stores only their mtime.
func (f Fields) ModeOf(st Stat) fs.FileMode {
	if !f.Mode || st.Type == Symlink {
		return 0
	}
	return st.Mode
}

// MTimeOf is the mtime to store for st, or the zero time when mtimes are
// not stored.
func (f Fields) MTimeOf(st Stat) time.Time {
	if !f.MTime {
		return time.Time{}
	}
	return st.MTime
}

// String describes st for itemised output and error messages.
func (st Stat) String() string {
	return fmt.Sprintf("%s size=%d mode=%04o mtime=%s", st.Type, st.Size, uint32(st.Mode.Perm()), st.MTime.Format(time.RFC3339Nano))
}

// FromStatT converts a raw lstat result, as the walker gets it from
// fstatat(2) on a directory descriptor without building an fs.FileInfo.
// It gives what FromFileInfo gives for the same entry, and a directory's
// CTime.
func FromStatT(s *unix.Stat_t) Stat {
	mode := fs.FileMode(s.Mode & 0o777)
	if s.Mode&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if s.Mode&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if s.Mode&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	st := Stat{Size: s.Size, MTime: time.Unix(s.Mtim.Unix()).UTC()}
	switch s.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		st.Type = File
	case unix.S_IFDIR:
		st.Type, mode = Dir, mode|fs.ModeDir
		// A directory's size says nothing about its entries.
		st.Size, st.CTime = 0, s.Ctim.Nano()
	case unix.S_IFLNK:
		st.Type, mode = Symlink, mode|fs.ModeSymlink
	case unix.S_IFIFO:
		st.Type, mode = Other, mode|fs.ModeNamedPipe
	case unix.S_IFSOCK:
		st.Type, mode = Other, mode|fs.ModeSocket
	case unix.S_IFCHR:
		st.Type, mode = Other, mode|fs.ModeDevice|fs.ModeCharDevice
	default:
		st.Type, mode = Other, mode|fs.ModeDevice
	}
	st.Mode = mode
	return st
}
