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

	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// Every write under DEST goes through a directory file descriptor and a
// single validated name (openat, mkdirat, symlinkat, renameat, unlinkat),
// never through a joined path string, and nothing is ever opened through a
// symlink (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW): whatever a root or an earlier
// pull left in DEST, a write cannot land outside it.

// lstatAt stats name in dirfd without following a symlink; a missing
// entry gives metadata.None and no error.
func lstatAt(dirfd int, name string) (metadata.Stat, error) {
	var st unix.Stat_t
	if err := fsat.Lstat(dirfd, name, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return metadata.Stat{}, nil
		}
		return metadata.Stat{}, err
	}
	return metadata.FromStatT(&st), nil
}

func fstat(fd int) (metadata.Stat, error) {
	var st unix.Stat_t
	if err := fsat.Fstat(fd, &st); err != nil {
		return metadata.Stat{}, err
	}
	return metadata.FromStatT(&st), nil
}

// sameLocal is the quick check of an entry against its record: the lstat
// now is the one pull recorded, field for field as the index stores them
// (type, size, mtime and a directory's ctime in nanoseconds, the chmod
// bits).
func sameLocal(rec, now metadata.Stat) bool {
	return rec.Type == now.Type && rec.Size == now.Size && rec.MTime.UnixNano() == now.MTime.UnixNano() &&
		unixPerms(rec.Mode) == unixPerms(now.Mode) && rec.CTime == now.CTime
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
	fd, err := fsat.OpenDir(dirfd, name)
	if err != nil {
		return err
	}
	// A read-only directory (a root can make one) must be writable to be
	// emptied.
	unix.Fchmod(fd, 0o700)
	names, err := fsat.ReadNames(fd)
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

// readFileAt reads a small file of the state directory.
func readFileAt(dirfd int, name string) ([]byte, error) {
	fd, err := fsat.Open(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
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
	fd, err := fsat.Open(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
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

// nsOf converts a time to what lstat gives.
func nsOf(t time.Time) int64 { return t.UnixNano() }
