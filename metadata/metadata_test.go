package metadata

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The walker's fstatat path and os.Lstat must agree on every kind of entry
// and every mode bit, or a tree would look changed depending on which one
// read it.
func TestFromStatTMatchesFromFileInfo(t *testing.T) {
	dir := t.TempDir()
	mk := map[string]func(p string) error{
		"file":    func(p string) error { return os.WriteFile(p, []byte("abc"), 0o644) },
		"exec":    func(p string) error { return os.WriteFile(p, nil, 0o755) },
		"setuid":  func(p string) error { return mkMode(p, 0o4755) },
		"setgid":  func(p string) error { return mkMode(p, 0o2710) },
		"sticky":  func(p string) error { return mkDirMode(p, 0o1777) },
		"dir":     func(p string) error { return os.Mkdir(p, 0o750) },
		"symlink": func(p string) error { return os.Symlink("target/x", p) },
		"fifo":    func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"old":     func(p string) error { return touch(p, time.Unix(-86400*365, 7)) },
		"ns":      func(p string) error { return touch(p, time.Unix(1700000000, 999999999)) },
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for name, create := range mk {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			if err := create(p); err != nil {
				t.Skip(err)
			}
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			if err := unix.Fstatat(int(d.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				t.Fatal(err)
			}
			want, got := FromFileInfo(fi), FromStatT(&st)
			if got.Type != want.Type || got.Size != want.Size || got.Mode != want.Mode || !got.MTime.Equal(want.MTime) {
				t.Fatalf("FromStatT %+v, FromFileInfo %+v", got, want)
			}
			// A directory's size is 0 and its ctime kept; no other
			// entry's ctime is.
			wantCTime := int64(0)
			if uint32(st.Mode)&unix.S_IFMT == unix.S_IFDIR {
				wantCTime = st.Ctim.Nano()
			}
			if got.CTime != wantCTime || (got.Type == Dir && got.Size != 0) {
				t.Errorf("FromStatT: CTime %d, size %d; want CTime %d, and size 0 for a directory", got.CTime, got.Size, wantCTime)
			}
		})
	}
}

func mkMode(p string, m os.FileMode) error {
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		return err
	}
	return os.Chmod(p, toGo(m))
}

func mkDirMode(p string, m os.FileMode) error {
	if err := os.Mkdir(p, 0o700); err != nil {
		return err
	}
	return os.Chmod(p, toGo(m))
}

// toGo maps octal setuid/setgid/sticky bits to Go's FileMode bits.
func toGo(m os.FileMode) os.FileMode {
	g := m & 0o777
	if m&0o4000 != 0 {
		g |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		g |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		g |= os.ModeSticky
	}
	return g
}

func touch(p string, mt time.Time) error {
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		return err
	}
	return os.Chtimes(p, mt, mt)
}
