package fsat

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// An open through openat2 with RESOLVE_CACHED, where the kernel has it,
// and one through openat give the same file or the same error, a symlink
// refused as the last component alike.
func TestOpenCachedAsOpenat(t *testing.T) {
	_, at := tree(t)
	open := func(cached bool, name string, flags int) (unix.Stat_t, error) {
		defer noCachedOpen.Store(noCachedOpen.Load())
		noCachedOpen.Store(!cached)
		var st unix.Stat_t
		fd, err := Open(at, name, flags, 0)
		if err != nil {
			return st, err
		}
		defer unix.Close(fd)
		return st, Fstat(fd, &st)
	}
	for _, tc := range []struct {
		name  string
		flags int
	}{
		{"file", unix.O_RDONLY | unix.O_NOFOLLOW},
		{"sub", unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW},
		{"file", unix.O_RDONLY | unix.O_DIRECTORY},
		{"to-file", unix.O_RDONLY | unix.O_NOFOLLOW},
		{"to-file", unix.O_RDONLY},
		{"missing", unix.O_RDONLY},
		{"sub/../file", unix.O_RDONLY},
	} {
		for range 2 { // the second time, every name is in the dentry cache
			want, werr := open(false, tc.name, tc.flags)
			got, gerr := open(true, tc.name, tc.flags)
			if !errors.Is(gerr, werr) && (gerr == nil || werr == nil || gerr.Error() != werr.Error()) {
				t.Fatalf("%s %#x: error %v, openat's %v", tc.name, tc.flags, gerr, werr)
			}
			if got.Ino != want.Ino || got.Dev != want.Dev {
				t.Fatalf("%s %#x: opened inode %d, openat's %d", tc.name, tc.flags, got.Ino, want.Ino)
			}
		}
	}
}
