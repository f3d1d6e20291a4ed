package diff

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
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

	_, top, err := ReadDirAt(unix.AT_FDCWD, root, root, "", Filter{Hidden: true})
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
			entries, fd, err := ReadDirAt(top, tc.name, p, tc.name, Filter{Hidden: true})
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
	entries, fd, err := ReadDirAt(unix.AT_FDCWD, dir, dir, rel, f)
	if err == nil {
		unix.Close(fd)
	}
	return entries, err
}
