package export

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestToFileWholeOrNothing: a CAR written to a new or regular file lands
// whole or not at all: what was there stays on failure, and no temporary
// file is left either way; a symlink is written through and stays.
func TestToFileWholeOrNothing(t *testing.T) {
	fail := errors.New("cut short")
	write := func(data string, err error) func(io.Writer) (Stats, error) {
		return func(w io.Writer) (Stats, error) {
			_, werr := io.WriteString(w, data)
			if err != nil {
				return Stats{}, err
			}
			return Stats{Bytes: int64(len(data))}, werr
		}
	}
	tests := []struct {
		name     string
		existing string // "": nothing at the path; "file"; "symlink" (to a file)
		err      error
		want     string // the path's content afterwards ("-": absent)
	}{
		{"new file", "", nil, "car"},
		{"new file, failure", "", fail, "-"},
		{"over a file", "file", nil, "car"},
		{"over a file, failure", "file", fail, "old"},
		{"through a symlink", "symlink", nil, "car"},
		{"through a symlink, failure", "symlink", fail, "partial car"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out.car")
			switch tt.existing {
			case "file":
				if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
			case "symlink":
				target := filepath.Join(dir, "target")
				if err := os.WriteFile(target, []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, path); err != nil {
					t.Fatal(err)
				}
			}
			data := "car"
			if tt.err != nil {
				data = "partial car"
			}
			_, err := ToFile(path, write(data, tt.err))
			if (err != nil) != (tt.err != nil) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			got, rerr := os.ReadFile(path)
			switch {
			case tt.want == "-" && rerr == nil:
				t.Errorf("%s exists after a failure: %q", path, got)
			case tt.want != "-" && string(got) != tt.want:
				t.Errorf("content %q (%v), want %q", got, rerr, tt.want)
			}
			if tt.existing == "symlink" {
				if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink == 0 {
					t.Errorf("the symlink at %s was replaced or removed", path)
				}
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if e.Name() != "out.car" && e.Name() != "target" {
					t.Errorf("left behind: %s", e.Name())
				}
			}
		})
	}
}
