package fsat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fastpath/fastpathtest"
)

// tree makes a directory with a file, a subdirectory and symlinks to
// each, and returns it open.
func tree(t *testing.T) (string, int) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"to-file": "file", "to-sub": "sub", "to-outside": os.TempDir()} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	return dir, openDir(t, dir)
}

// openDir opens dir for the test, closed when it ends.
func openDir(t *testing.T, dir string) int {
	t.Helper()
	fd, err := OpenDir(unix.AT_FDCWD, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// What is opened below a directory's descriptor is the entry there, never
// what a symlink there points to.
func TestOpenBelow(t *testing.T) {
	_, at := tree(t)
	// A symlink is refused with ELOOP, or ENOTDIR where O_DIRECTORY is
	// checked first (Linux).
	symlink := []error{unix.ELOOP, unix.ENOTDIR}
	for _, tc := range []struct {
		name    string
		dir     bool // OpenDir, else Open read-only with O_NOFOLLOW
		wantErr []error
	}{
		{"sub", true, nil},
		{"file", false, nil},
		{"file", true, []error{unix.ENOTDIR}},
		{"to-sub", true, symlink},
		{"to-outside", true, symlink},
		{"to-file", false, []error{unix.ELOOP}},
		{"missing", true, []error{unix.ENOENT}},
		{"missing", false, []error{unix.ENOENT}},
	} {
		t.Run(fmt.Sprintf("%s/dir=%v", tc.name, tc.dir), func(t *testing.T) {
			var fd int
			var err error
			if tc.dir {
				fd, err = OpenDir(at, tc.name)
			} else {
				fd, err = Open(at, tc.name, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
			}
			if (err == nil) != (tc.wantErr == nil) || (err != nil && !slices.ContainsFunc(tc.wantErr, func(e error) bool { return errors.Is(err, e) })) {
				t.Fatalf("error %v, want one of %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			defer unix.Close(fd)
			flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
			if err != nil || flags&unix.FD_CLOEXEC == 0 {
				t.Errorf("descriptor flags %#x (%v): not close-on-exec", flags, err)
			}
		})
	}
}

// A name is opened whatever its length, the longest one a directory
// takes and a path longer than that alike, and a name with a NUL in it is
// refused rather than cut short there.
func TestOpenNames(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("n", 255)
	if err := os.WriteFile(filepath.Join(dir, long), []byte("long"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	at := openDir(t, dir)
	for _, tc := range []struct {
		at   int
		name string
		want string // "": refused with EINVAL
	}{
		{at, "a", "short"},
		{at, long, "long"},
		{unix.AT_FDCWD, filepath.Join(dir, long), "long"},
		{at, "a\x00b", ""},
		{unix.AT_FDCWD, filepath.Join(dir, "a") + "\x00" + long, ""},
	} {
		fd, err := Open(tc.at, tc.name, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
		if tc.want == "" {
			if !errors.Is(err, unix.EINVAL) {
				t.Errorf("%.20q: error %v, want EINVAL", tc.name, err)
			}
			if err == nil {
				unix.Close(fd)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%.20q (%d bytes): %v", tc.name, len(tc.name), err)
		}
		buf := make([]byte, 16)
		n, err := unix.Read(fd, buf)
		unix.Close(fd)
		if err != nil || string(buf[:n]) != tc.want {
			t.Errorf("%.20q: read %q (%v), want %q", tc.name, buf[:n], err, tc.want)
		}
	}
}

func TestLstat(t *testing.T) {
	_, at := tree(t)
	for _, tc := range []struct {
		name     string
		wantType uint32
		wantErr  error
	}{
		{"file", unix.S_IFREG, nil},
		{"sub", unix.S_IFDIR, nil},
		{"to-sub", unix.S_IFLNK, nil},
		{"missing", 0, unix.ENOENT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st unix.Stat_t
			err := Lstat(at, tc.name, &st)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if err == nil && uint32(st.Mode)&unix.S_IFMT != tc.wantType {
				t.Errorf("type %#o, want %#o", uint32(st.Mode)&unix.S_IFMT, tc.wantType)
			}
			if err != nil || tc.wantType != unix.S_IFREG {
				return
			}
			fd, err := Open(at, tc.name, unix.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			var fst unix.Stat_t
			if err := Fstat(fd, &fst); err != nil {
				t.Fatal(err)
			}
			if fst.Ino != st.Ino || fst.Size != st.Size {
				t.Errorf("Fstat: inode %d size %d, Lstat: inode %d size %d", fst.Ino, fst.Size, st.Ino, st.Size)
			}
		})
	}
}

// A listing is whole (more names than one getdents buffer holds), and
// starts from the beginning however much of the directory was read before.
func TestReadNames(t *testing.T) {
	for _, n := range []int{0, 1, 3000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			var want []string
			for i := range n {
				name := fmt.Sprintf("entry-with-a-longish-name-%05d", i)
				want = append(want, name)
				if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			fd := openDir(t, dir)
			for pass := range 2 {
				got, err := ReadNames(fd)
				if err != nil {
					t.Fatal(err)
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Fatalf("pass %d: %d names, want %d", pass, len(got), len(want))
				}
			}
		})
	}
}

// A typed listing has the names ReadNames has (more than one getdents
// buffer holds, from the start however much was read before), each with
// the type an lstat finds where the listing tells one.
func TestReadDirents(t *testing.T) {
	dir, fd := tree(t)
	for i := range 3000 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("entry-with-a-longish-name-%05d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	want, err := ReadNames(fd)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	typeOf := map[uint32]uint8{unix.S_IFREG: unix.DT_REG, unix.S_IFDIR: unix.DT_DIR, unix.S_IFLNK: unix.DT_LNK, unix.S_IFIFO: unix.DT_FIFO}
	for pass := range 2 {
		ents, err := ReadDirents(fd)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ents {
			got = append(got, e.Name)
			var st unix.Stat_t
			if err := Lstat(fd, e.Name, &st); err != nil {
				t.Fatal(err)
			}
			if e.Type != unix.DT_UNKNOWN && e.Type != typeOf[uint32(st.Mode)&unix.S_IFMT] {
				t.Errorf("%s: type %d, lstat says mode %o", e.Name, e.Type, st.Mode)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("pass %d: %d names, want %d", pass, len(got), len(want))
		}
	}
}

// A symlink's target is read whole whatever size its lstat gave (it may
// have been replaced by a longer one since).
func TestReadlink(t *testing.T) {
	dir := t.TempDir()
	at := openDir(t, dir)
	for _, tc := range []struct {
		target string
		size   int64
	}{
		{"x", 1},
		{strings.Repeat("a", 127), 127},
		{strings.Repeat("b", 128), 128},
		{strings.Repeat("c", 1000), 0},
		{strings.Repeat("d/", 2000), 10},
	} {
		t.Run(fmt.Sprintf("%d/%d", len(tc.target), tc.size), func(t *testing.T) {
			name := fmt.Sprintf("link-%d-%d", len(tc.target), tc.size)
			if err := unix.Symlinkat(tc.target, at, name); err != nil {
				t.Fatal(err)
			}
			got, err := Readlink(at, name, tc.size)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.target {
				t.Errorf("target of %d bytes, want %d", len(got), len(tc.target))
			}
		})
	}
}

// Mtimes are set to the nanosecond, through the open file (SetMTime) or by
// name (SetMTimeAt, a symlink's own).
func TestSetMTime(t *testing.T) {
	_, at := tree(t)
	for _, tc := range []struct {
		name  string
		byFD  bool
		mtime int64
	}{
		{"file", true, 1_700_000_000_123_456_789},
		{"file", false, 1_600_000_000_000_000_001},
		{"sub", true, 1_500_000_000_999_999_999},
		{"to-file", false, 1_400_000_000_000_000_007},
	} {
		t.Run(fmt.Sprintf("%s/fd=%v/%d", tc.name, tc.byFD, tc.mtime), func(t *testing.T) {
			var before unix.Stat_t
			if err := Lstat(at, "file", &before); err != nil {
				t.Fatal(err)
			}
			if tc.byFD {
				fd, err := Open(at, tc.name, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(fd)
				if err := SetMTime(at, tc.name, fd, tc.mtime); err != nil {
					t.Fatal(err)
				}
			} else if err := SetMTimeAt(at, tc.name, tc.mtime); err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			if err := Lstat(at, tc.name, &st); err != nil {
				t.Fatal(err)
			}
			if got := st.Mtim.Nano(); got != tc.mtime {
				t.Errorf("mtime %d, want %d", got, tc.mtime)
			}
			if tc.name != "to-file" {
				return
			}
			var target unix.Stat_t
			if err := Lstat(at, "file", &target); err != nil {
				t.Fatal(err)
			}
			if target.Mtim != before.Mtim {
				t.Errorf("the symlink's target's mtime moved: %v, was %v", target.Mtim, before.Mtim)
			}
		})
	}
}

// Whole writes and reads at an offset, and copies between files in both
// I/O modes (copy_file_range, or through a buffer), reaching past the end
// of the source refused.
func TestWriteReadCopy(t *testing.T) {
	fastpathtest.BothModes(t, func(t *testing.T, _ bool) {
		dir := t.TempDir()
		at := openDir(t, dir)
		data := bytes.Repeat([]byte("0123456789abcdef"), 300_000) // more than one copy buffer
		src, err := Open(at, "src", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(src)
		if err := PwriteAll(src, data[:1000], 0); err != nil {
			t.Fatal(err)
		}
		if err := PwriteAll(src, data[1000:], 1000); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			soff, doff, n int64
			wantErr       error
		}{
			{0, 0, int64(len(data)), nil},
			{7, 4096, 1 << 20, nil},
			{int64(len(data)) - 10, 0, 10, nil},
			{int64(len(data)) - 10, 0, 11, io.ErrUnexpectedEOF},
		} {
			t.Run(fmt.Sprintf("%d+%d@%d", tc.soff, tc.n, tc.doff), func(t *testing.T) {
				name := fmt.Sprintf("dst-%d-%d-%d", tc.soff, tc.doff, tc.n)
				dst, err := Open(at, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(dst)
				err = CopyRange(dst, tc.doff, src, tc.soff, tc.n)
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("CopyRange: %v, want %v", err, tc.wantErr)
				}
				if err != nil {
					return
				}
				got := make([]byte, tc.n)
				if err := PreadFull(dst, got, tc.doff); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data[tc.soff:tc.soff+tc.n]) {
					t.Error("copy differs from the source")
				}
				if err := PreadFull(dst, make([]byte, 1), tc.doff+tc.n); !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("read past the end: %v, want %v", err, io.ErrUnexpectedEOF)
				}
			})
		}
	})
}
