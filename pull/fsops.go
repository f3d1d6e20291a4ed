package pull

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Every write under DEST goes through a directory file descriptor and a
// single validated name (openat, mkdirat, symlinkat, renameat, unlinkat),
// never through a joined path string, and nothing is ever opened through a
// symlink (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW): whatever a root or an earlier
// pull left in DEST, a write cannot land outside it.

// entryType is a local entry's kind as the index stores it.
type entryType uint8

const (
	typeNone entryType = iota // absent
	typeFile
	typeDir
	typeSymlink
	typeOther
)

// localStat is the part of an lstat the quick check compares.
type localStat struct {
	Type  entryType
	Size  int64
	MTime int64  // ns since the epoch
	Mode  uint32 // permission, setuid, setgid and sticky bits
	// CTime, directories only: any entry added, removed or renamed, any
	// chmod or utimes moves it, and nothing sets it back. A file's is left
	// out: a copy of DEST made elsewhere keeps sizes and mtimes, and should
	// pass the quick check there.
	CTime int64
}

func fromStat(st *unix.Stat_t) localStat {
	ls := localStat{
		Size:  st.Size,
		MTime: st.Mtim.Nano(),
		Mode:  uint32(st.Mode) & 0o7777, // a uint16 on darwin
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		ls.Type = typeFile
	case unix.S_IFDIR:
		ls.Type = typeDir
		ls.Size = 0 // a directory's size says nothing about its entries
		ls.CTime = st.Ctim.Nano()
	case unix.S_IFLNK:
		ls.Type = typeSymlink
	default:
		ls.Type = typeOther
	}
	return ls
}

// lstatAt stats name in dirfd without following a symlink; a missing
// entry gives typeNone and no error.
func lstatAt(dirfd int, name string) (localStat, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return localStat{}, nil
		}
		return localStat{}, err
	}
	return fromStat(&st), nil
}

func fstat(fd int) (localStat, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return localStat{}, err
	}
	return fromStat(&st), nil
}

// openDir opens the directory name in dirfd, refusing a symlink.
func openDir(dirfd int, name string) (int, error) {
	return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// readNames lists a directory's entries (without . and ..), from the
// start of the directory whatever was read from dirfd before.
func readNames(dirfd int) ([]string, error) {
	if _, err := unix.Seek(dirfd, 0, 0); err != nil {
		return nil, err
	}
	buf := make([]byte, 32<<10)
	var names []string
	for {
		n, err := unix.ReadDirent(dirfd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// tmpName is a fresh temporary name; O_EXCL makes a collision an error,
// never an overwrite.
func tmpName() string {
	var b [8]byte
	rand.Read(b[:])
	return tmpPrefix + hex.EncodeToString(b[:])
}

// removeAt removes name from dirfd, a directory with everything under it.
// A symlink is removed, never followed.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	switch {
	case err == nil || errors.Is(err, unix.ENOENT):
		return nil
	case !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM):
		return err
	}
	fd, err := openDir(dirfd, name)
	if err != nil {
		return err
	}
	// A read-only directory (a root can make one) must be writable to be
	// emptied.
	unix.Fchmod(fd, 0o700)
	names, err := readNames(fd)
	if err == nil {
		for _, n := range names {
			if err = removeAt(fd, n); err != nil {
				break
			}
		}
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// lutimesAt sets a symlink's own mtime.
func lutimesAt(dirfd int, name string, mtime int64) error {
	ts := []unix.Timespec{unix.NsecToTimespec(mtime), unix.NsecToTimespec(mtime)}
	return unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// readFileAt reads a small file of the state directory.
func readFileAt(dirfd int, name string) ([]byte, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// writeFileAt replaces name in dirfd with data: temporary name, fsync,
// rename, fsync of the directory (without it the rename, state.json's
// record of a root pulled, could be lost to a power cut after pull said
// it was done).
func writeFileAt(dirfd int, name string, data []byte) error {
	tmp := tmpName()
	fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dirfd, tmp, dirfd, name)
	}
	if err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := unix.Fsync(dirfd); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// pwriteAll writes b at off.
func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// preadFull reads len(b) bytes at off.
func preadFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pread(fd, b, off)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// copyRangeSlow copies n bytes from src at soff to dst at doff through a
// buffer: the portable copyRange (fsops_linux.go has the kernel's).
func copyRangeSlow(dst int, doff int64, src int, soff int64, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		b := buf[:min(n, int64(len(buf)))]
		if err := preadFull(src, b, soff); err != nil {
			return err
		}
		if err := pwriteAll(dst, b, doff); err != nil {
			return err
		}
		soff, doff, n = soff+int64(len(b)), doff+int64(len(b)), n-int64(len(b))
	}
	return nil
}

// nsOf converts a time to what lstat gives.
func nsOf(t time.Time) int64 { return t.UnixNano() }
