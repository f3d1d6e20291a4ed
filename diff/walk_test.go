package diff

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// TestReadDirAt: a subdirectory opened relative to its parent's descriptor
// lists like one opened by path, and a name that is no longer a directory
// (a symlink swapped in after the parent was listed) is an error, never
// followed.
func TestReadDirAt(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "sub", "deeper"), 0o755))
	must(os.WriteFile(filepath.Join(root, "sub", "b"), []byte("b"), 0o644))
	must(os.WriteFile(filepath.Join(root, "sub", "a"), nil, 0o644))
	must(os.Symlink("sub", filepath.Join(root, "link")))
	must(os.WriteFile(filepath.Join(root, "file"), nil, 0o644))

	_, top, err := ReadDirAt(unix.AT_FDCWD, root, root, "", Filter{Hidden: true}, true)
	must(err)
	defer unix.Close(top)
	cases := []struct {
		name  string
		names []string
		err   error
	}{
		{"sub", []string{"a", "b", "deeper"}, nil},
		{"link", nil, unix.ENOTDIR}, // O_NOFOLLOW|O_DIRECTORY: not followed
		{"file", nil, unix.ENOTDIR},
		{"gone", nil, unix.ENOENT},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(root, tc.name)
			entries, fd, err := ReadDirAt(top, tc.name, p, tc.name, Filter{Hidden: true}, true)
			if tc.err != nil {
				var pe *os.PathError
				if !errors.Is(err, tc.err) || !errors.As(err, &pe) || pe.Path != p {
					t.Fatalf("got %v, want %v naming %s", err, tc.err, p)
				}
				return
			}
			must(err)
			unix.Close(fd)
			byPath, err := readDir(p, tc.name, Filter{Hidden: true})
			must(err)
			var got []string
			for i, e := range entries {
				got = append(got, e.Name)
				if byPath[i] != e {
					t.Errorf("entry %d: %+v relative, %+v by path", i, e, byPath[i])
				}
			}
			if len(got) != len(tc.names) || len(byPath) != len(entries) {
				t.Fatalf("listed %q, want %q", got, tc.names)
			}
			for i := range got {
				if got[i] != tc.names[i] {
					t.Fatalf("listed %q, want %q", got, tc.names)
				}
			}
		})
	}
}

// readDir lists the directory at path dir.
func readDir(dir, rel string, f Filter) ([]Entry, error) {
	entries, fd, err := ReadDirAt(unix.AT_FDCWD, dir, dir, rel, f, true)
	if err == nil {
		unix.Close(fd)
	}
	return entries, err
}

// TestReadDirAtNoLstat: without lstatFiles, a regular file comes with its
// type alone (NoLstat), under the same filter and in the same order as
// with; every other kind of entry is lstat'ed all the same.
func TestReadDirAtNoLstat(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"b.deb", "a", ".hidden", "c.txt"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "d.deb"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	dirOnly, err := ParseRule("*.deb/", false)
	if err != nil {
		t.Fatal(err)
	}
	byName, err := ParseRule("c.*", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		filter Filter
	}{
		{"all", Filter{}},
		{"hidden", Filter{Hidden: true}},
		{"by name", Filter{Rules: []Rule{byName}}},
		{"directory-only rule", Filter{Rules: []Rule{dirOnly}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stated, fd, err := ReadDirAt(unix.AT_FDCWD, root, root, "", tc.filter, true)
			if err != nil {
				t.Fatal(err)
			}
			unix.Close(fd)
			listed, fd, err := ReadDirAt(unix.AT_FDCWD, root, root, "", tc.filter, false)
			if err != nil {
				t.Fatal(err)
			}
			unix.Close(fd)
			if len(listed) != len(stated) {
				t.Fatalf("%d entries without lstat, %d with", len(listed), len(stated))
			}
			for i, e := range listed {
				want := stated[i]
				if want.Stat.Type == metadata.File {
					want = Entry{Name: want.Name, Stat: metadata.Stat{Type: metadata.File}, NoLstat: true}
				}
				if e != want {
					t.Errorf("entry %d: %+v, want %+v", i, e, want)
				}
			}
		})
	}
}
