package export

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestToFile: a regular file is kept when written and removed when the
// write fails; a device (through a symlink, so that a regression removes
// the symlink, not the device) is written to and never removed.
func TestToFile(t *testing.T) {
	if _, err := os.Stat(os.DevNull); err != nil {
		t.Fatalf("this test writes to %s: %v", os.DevNull, err)
	}
	cut := errors.New("cut short")
	for _, tc := range []struct {
		name    string
		device  bool
		fail    bool
		present bool
	}{
		{"regular file written", false, false, true},
		{"regular file cut short", false, true, false},
		{"device written", true, false, true},
		{"device cut short", true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.car")
			if tc.device {
				if err := os.Symlink(os.DevNull, path); err != nil {
					t.Fatal(err)
				}
			}
			_, err := ToFile(path, func(w io.Writer) (Stats, error) {
				if _, err := w.Write([]byte("car")); err != nil {
					return Stats{}, err
				}
				if tc.fail {
					return Stats{}, cut
				}
				return Stats{}, nil
			})
			if tc.fail != errors.Is(err, cut) || !tc.fail && err != nil {
				t.Fatalf("ToFile: %v (want the write's error: %v)", err, tc.fail)
			}
			if _, err := os.Lstat(path); (err == nil) != tc.present {
				t.Fatalf("after ToFile, %s present=%v, want %v", path, err == nil, tc.present)
			}
			if fi, err := os.Stat(os.DevNull); err != nil || fi.Mode().IsRegular() {
				t.Fatalf("%s is gone or no longer a device: %v", os.DevNull, err)
			}
		})
	}
}
