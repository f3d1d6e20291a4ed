package pull

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// TestWriteTempFresh: a file written where nothing was (made without a
// name and linked in, with the fast paths) is in place with its content,
// mode and mtime, and nothing else is left in the directory; if something
// took its name meanwhile (a file, a directory), it is replaced as a
// rename replaces it.
func TestWriteTempFresh(t *testing.T) {
	cases := []struct {
		name   string
		before func(dir string) // what takes the name after the entry was looked at
	}{
		{"name free", func(string) {}},
		{"a file took the name", func(dir string) { os.WriteFile(filepath.Join(dir, "f"), []byte("other"), 0o644) }},
		{"a directory took the name", func(dir string) { os.MkdirAll(filepath.Join(dir, "f", "sub"), 0o755) }},
	}
	for _, fast := range []bool{true, false} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("fast paths %v/%s", fast, c.name), func(t *testing.T) {
				dir := t.TempDir()
				fd, err := fsat.OpenDir(unix.AT_FDCWD, dir)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(fd)
				p := &puller{o: Options{Dest: dir}, fast: fast}
				d := &dirNode{fd: fd}
				c.before(dir)
				m := meta{hasMode: true, mode: 0o640, hasMTime: true, mtime: t0.UnixNano()}
				ls, err := p.writeTemp(d, "f", "f", m, true, func(fd int) error { return fsat.PwriteAll(fd, []byte("content"), 0) })
				if err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(filepath.Join(dir, "f"))
				if err != nil || string(got) != "content" {
					t.Errorf("f holds %q (%v)", got, err)
				}
				now, err := lstatAt(fd, "f")
				if err != nil {
					t.Fatal(err)
				}
				if now.Type != metadata.File || !sameLocal(ls, now) || unixPerms(now.Mode) != 0o640 || now.MTime.UnixNano() != t0.UnixNano() {
					t.Errorf("f is %+v, the record says %+v", now, ls)
				}
				if names, _ := fsat.ReadNames(fd); len(names) != 1 {
					t.Errorf("the directory holds %q", names)
				}
			})
		}
	}
}
