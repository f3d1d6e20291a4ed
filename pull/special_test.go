package pull

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestSpecialBits: setuid, setgid and sticky bits a ROOT stores are not
// applied unless asked for (a root from any gateway would otherwise make
// setuid-root files when pull runs as root); with PreserveSpecialBits
// they are; a pull that changes the choice puts every mode right, fetching
// only what it must.
func TestSpecialBits(t *testing.T) {
	g := newDAGStore(t)
	tree := dir(0o755, t0, map[string]*spec{
		"suid":   file("setuid", fs.ModeSetuid|0o755, t0),
		"sgid":   file("setgid", fs.ModeSetgid|0o755, t0),
		"plain":  file("plain", 0o644, t0),
		"sticky": dir(fs.ModeSticky|0o777, t0, map[string]*spec{"f": file("f", 0o644, t0)}),
		"shared": dir(fs.ModeSetgid|0o775, t0, nil),
	})
	root := g.build(tree)
	src := &Store{BS: g.bs}
	dest := filepath.Join(t.TempDir(), "dest")
	modes := func() map[string]uint32 {
		m := map[string]uint32{}
		for _, n := range []string{"suid", "sgid", "plain", "sticky", "shared"} {
			fi, err := os.Lstat(filepath.Join(dest, n))
			if err != nil {
				t.Fatal(err)
			}
			m[n] = uint32(fi.Sys().(*syscall.Stat_t).Mode) & 0o7777 // a uint16 on darwin
		}
		return m
	}
	stripped := map[string]uint32{"suid": 0o755, "sgid": 0o755, "plain": 0o644, "sticky": 0o777, "shared": 0o775}
	kept := map[string]uint32{"suid": 0o4755, "sgid": 0o2755, "plain": 0o644, "sticky": 0o1777, "shared": 0o2775}
	check := func(when string, want map[string]uint32) {
		t.Helper()
		got := modes()
		for n, w := range want {
			if got[n] != w {
				t.Errorf("%s: %s has mode %04o, want %04o", when, n, got[n], w)
			}
		}
	}
	preserve := func(o *Options) { o.PreserveSpecialBits = true }

	mustPull(t, src, root, dest)
	check("default", stripped)
	res := mustPull(t, src, root, dest, preserve)
	check("--preserve-special-bits", kept)
	if res.FilesWritten != 2 {
		t.Errorf("--preserve-special-bits after a default pull wrote %d files, want the 2 with special bits", res.FilesWritten)
	}
	mustPull(t, src, root, dest, preserve)
	check("--preserve-special-bits again", kept)
	mustPull(t, src, root, dest)
	check("default again", stripped)

	// A run that changes rules and fails midway leaves records of both:
	// the next run checks every file's mode.
	mustPull(t, src, root, dest, preserve)
	failing := &failingSource{Source: src}
	failing.n.Store(1)
	if _, err := pullInto(t, failing, root, dest); err == nil {
		t.Fatal("a pull with a failing source succeeded")
	}
	mustPull(t, src, root, dest, preserve)
	check("--preserve-special-bits after an interrupted default pull", kept)

	fresh := filepath.Join(t.TempDir(), "fresh")
	mustPull(t, src, root, fresh, preserve)
	dest = fresh
	check("--preserve-special-bits on a first pull", kept)
}
