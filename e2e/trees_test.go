//go:build e2e

package e2e

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	kib = 1 << 10
	mib = 1 << 20

	v0Chunk = 256 * kib // unixfs-v0-2015: size-262144, 174 links per node
	v0Width = 174
	v1Chunk = 1 * mib // unixfs-v1-2025: size-1048576, 1024 links per node

	// The small file layout used to reach the DAG width boundary cheaply
	// with both profiles: --chunker size-1024 --max-file-links 16.
	smallChunk = 1 * kib
	smallWidth = 16
)

// defaultMTime is given to every entry the tree does not time on purpose, so
// that a tree (and so every CID in a failure report) is the same on every run.
var defaultMTime = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

// asRoot is whether the tests run as root. Otherwise modes that make an
// entry unreadable to its owner are kept readable (0400 files, 0500 dirs),
// since neither tool could import it.
var asRoot = os.Geteuid() == 0

// edgeTree holds the awkward cases both tools must agree on: chunk and DAG
// width boundaries of both profiles, odd names, every mode bit, extreme
// mtimes, symlinks of every kind, empty files and dirs, deep nesting.
var edgeTree = &sharedTree{name: "edge", build: buildEdgeTree}

// widthTree has file sizes at the chunk and DAG width boundaries of the
// small layout (smallChunk bytes, smallWidth links).
var widthTree = &sharedTree{name: "width", build: func(dir string) error {
	b := newBuilder(dir)
	c, w := int64(smallChunk), int64(smallWidth)
	for _, n := range []int64{0, 1, c - 1, c, c + 1, w*c - 1, w * c, w*c + 1, (w+1)*c + 1,
		w*w*c - 1, w * w * c, w*w*c + 1} {
		b.file(fmt.Sprintf("size-%08d", n), n, 0o644)
	}
	return b.finish()
}}

// tree is a small builder that records the first error and, at the end,
// gives every entry its mtime (explicit or defaultMTime) bottom-up and then
// the directory modes, so that nothing written later disturbs them.
type tree struct {
	root     string
	err      error
	mtimes   map[string]time.Time   // explicit mtimes by relative path
	dirModes map[string]fs.FileMode // applied last
}

func newBuilder(root string) *tree {
	b := &tree{root: root, mtimes: map[string]time.Time{}, dirModes: map[string]fs.FileMode{}}
	b.check(os.MkdirAll(root, 0o755))
	return b
}

func (b *tree) check(err error) {
	if b.err == nil && err != nil {
		b.err = err
	}
}

func (b *tree) path(rel string) string { return filepath.Join(b.root, rel) }

// dir makes rel and its parents; a mode other than 0755 is applied at the end.
func (b *tree) dir(rel string, mode fs.FileMode) {
	b.check(os.MkdirAll(b.path(rel), 0o755))
	if mode != 0o755 {
		if !asRoot {
			mode |= 0o500
		}
		b.dirModes[rel] = mode
	}
}

// file writes size pseudo-random bytes, a pure function of rel and size.
func (b *tree) file(rel string, size int64, mode fs.FileMode) {
	if b.err != nil {
		return
	}
	b.check(os.MkdirAll(filepath.Dir(b.path(rel)), 0o755))
	f, err := os.Create(b.path(rel))
	if err != nil {
		b.check(err)
		return
	}
	var seed [32]byte
	copy(seed[:], rel)
	binary.LittleEndian.PutUint64(seed[24:], uint64(size))
	rng := rand.NewChaCha8(seed)
	w := bufio.NewWriterSize(f, mib)
	buf := make([]byte, 64*kib)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		_, _ = rng.Read(buf[:n])
		_, err := w.Write(buf[:n])
		b.check(err)
		left -= n
	}
	b.check(w.Flush())
	b.check(f.Close())
	b.chmod(rel, mode)
}

// text writes content to rel with mode 0644.
func (b *tree) text(rel, content string) {
	b.check(os.MkdirAll(filepath.Dir(b.path(rel)), 0o755))
	b.check(os.WriteFile(b.path(rel), []byte(content), 0o644))
}

func (b *tree) chmod(rel string, mode fs.FileMode) {
	if !asRoot {
		mode |= 0o400
	}
	b.check(os.Chmod(b.path(rel), goMode(mode)))
}

func (b *tree) symlink(rel, target string) {
	b.check(os.MkdirAll(filepath.Dir(b.path(rel)), 0o755))
	b.check(os.Symlink(target, b.path(rel)))
}

func (b *tree) mtime(rel string, t time.Time) { b.mtimes[rel] = t }

// finish sets every mtime, children before parents, then the directory
// modes (a chmod does not touch the mtime).
func (b *tree) finish() error {
	if b.err != nil {
		return b.err
	}
	var all []string
	err := filepath.WalkDir(b.root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(b.root, p)
		all = append(all, rel)
		return nil
	})
	if err != nil {
		return err
	}
	// WalkDir visits a directory before its children: backwards, every
	// child comes before its parent.
	for i := len(all) - 1; i >= 0; i-- {
		rel := all[i]
		t, ok := b.mtimes[rel]
		if !ok {
			t = defaultMTime
		}
		if err := lutimes(b.path(rel), t); err != nil {
			return err
		}
	}
	for rel, mode := range b.dirModes {
		if err := os.Chmod(b.path(rel), goMode(mode)); err != nil {
			return err
		}
	}
	return nil
}

// goMode turns Unix permission bits (with 04000 setuid, 02000 setgid,
// 01000 sticky) into an fs.FileMode for os.Chmod.
func goMode(unixMode fs.FileMode) fs.FileMode {
	m := unixMode & fs.ModePerm
	if unixMode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if unixMode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if unixMode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// lutimes sets atime and mtime of path without following a symlink.
func lutimes(path string, t time.Time) error {
	ts := unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("lutimes %s: %w", path, err)
	}
	return nil
}

// oddNames are file names a mirror may hold; every one is valid on Linux.
var oddNames = []string{
	"a b", " lead", "trail ", "tab\there", "new\nline", "cr\rreturn", `back\slash`,
	"quo'te", `dq"uote`, "%41", "%2F", "a:b", "?*[]", "#hash", "$dollar", "~tilde", "-dash", "--",
	"\x01ctl", "\x7fdel", "\xff\xfe-not-utf8", "é-nfc", "e\u0301-nfd", "日本語", "emoji-🙂",
	"...", ".hidden", ".-dotdash", "UPPER", "upper",
	strings.Repeat("n", 255),                           // longest name, ASCII
	strings.Repeat("é", 127) + "x",                     // longest name, 255 bytes of UTF-8
	strings.Repeat("\xff", 255),                        // longest name, not UTF-8
	"0", "00", "1", "10", "9", "a", "A", "_", "z", "Z", // byte order vs other orders
}

// modeBits are the file modes of modes/: none, each bit alone, the usual
// ones, and all twelve.
var modeBits = func() []fs.FileMode {
	m := []fs.FileMode{0, 0o644, 0o755, 0o600, 0o777, 0o4755, 0o2755, 0o1777, 0o7777, 0o7000}
	for bit := range 12 {
		m = append(m, fs.FileMode(1)<<bit)
	}
	return m
}()

// mtimeCases are the mtimes of mtimes/, each given to a file, a directory
// and a symlink.
var mtimeCases = []struct {
	label string
	t     time.Time
}{
	{"epoch", time.Unix(0, 0)},
	{"epoch+1ns", time.Unix(0, 1)},
	{"whole-second", time.Unix(1600000000, 0)},
	{"1ns", time.Unix(1600000000, 1)},
	{"999999999ns", time.Unix(1600000000, 999999999)},
	{"1969-1ns", time.Unix(-1, 999999999)},
	{"1969-moon", time.Date(1969, 7, 20, 20, 17, 40, 123456789, time.UTC)},
	{"1901", time.Unix(-(1 << 31), 5)},
	{"2038-int32max", time.Unix(1<<31-1, 999999999)},
	{"2038-past-int32", time.Unix(1<<31, 1)},
	{"2100", time.Date(2100, 1, 1, 0, 0, 0, 500000000, time.UTC)},
	{"2400", time.Date(2400, 2, 29, 12, 0, 0, 999999999, time.UTC)},
}

func buildEdgeTree(root string) error {
	b := newBuilder(root)

	// Chunk boundaries of both profiles.
	seen := map[int64]bool{}
	for _, n := range []int64{0, 1, v0Chunk - 1, v0Chunk, v0Chunk + 1, v1Chunk - 1, v1Chunk, v1Chunk + 1, 2*v1Chunk + 3} {
		if !seen[n] {
			seen[n] = true
			b.file(fmt.Sprintf("sizes/size-%09d", n), n, 0o644)
		}
	}
	// The v0 DAG width boundary: 174 full leaves fit under one root node,
	// one byte more needs a second level.
	b.file(fmt.Sprintf("sizes/big/size-%09d", v0Width*v0Chunk), v0Width*v0Chunk, 0o644)
	b.file(fmt.Sprintf("sizes/big/size-%09d", v0Width*v0Chunk+1), v0Width*v0Chunk+1, 0o644)

	for _, n := range oddNames {
		b.text("names/"+n, "name: "+n)
	}
	b.text("names/dir with spaces/file", "x")
	b.text("names/.hidden-dir/.inner", "x")
	b.text("names/"+strings.Repeat("d", 255)+"/"+strings.Repeat("f", 255), "x")

	for _, m := range modeBits {
		b.file(fmt.Sprintf("modes/f-%04o", m), 3, m)
	}
	for _, m := range []fs.FileMode{0o755, 0o700, 0o555, 0o1777, 0o2775, 0o4755, 0o7777, 0o0000} {
		d := fmt.Sprintf("modes/d-%04o", m)
		b.dir(d, m)
		b.text(d+"/x", "x")
	}
	b.dir("modes/d-0000-empty", 0)

	for _, c := range mtimeCases {
		b.text("mtimes/f-"+c.label, c.label)
		b.mtime("mtimes/f-"+c.label, c.t)
		b.text("mtimes/d-"+c.label+"/x", c.label)
		b.mtime("mtimes/d-"+c.label, c.t)
		b.dir("mtimes/empty-d-"+c.label, 0o755)
		b.mtime("mtimes/empty-d-"+c.label, c.t)
		b.symlink("mtimes/l-"+c.label, "f-"+c.label)
		b.mtime("mtimes/l-"+c.label, c.t)
	}
	b.mtime("mtimes", time.Unix(-1, 1))

	for name, target := range map[string]string{
		"relative": "../sizes/size-000000001",
		"absolute": "/etc/passwd",
		"dangling": "does/not/exist",
		"self":     "self",
		"loop":     ".",
		"up":       "..",
		"dirlink":  "../names",
		"unicode":  "日本/é",
		"spaces":   "a b/c d",
		"newline":  "new\nline",
		"long":     strings.Repeat("x/", 1000) + "end",
		"a-to-b":   "b-to-a",
		"b-to-a":   "a-to-b",
		".hidden":  "relative",
	} {
		b.symlink("links/"+name, target)
	}

	b.text("empty/empty-file", "")
	b.dir("empty/empty-dir", 0o755)
	b.dir("empty/nested/a/b/c", 0o755)
	b.dir("empty/.hidden-empty-dir", 0o755)

	deep := "deep"
	for i := 1; i <= 40; i++ {
		deep += fmt.Sprintf("/d%02d", i)
	}
	b.text(deep+"/leaf", "bottom")
	b.dir(deep+"/empty", 0o755)

	b.mtime(".", time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC))
	return b.finish()
}
