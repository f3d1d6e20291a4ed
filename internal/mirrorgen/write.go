package mirrorgen

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// fileSpec is a regular file to write; its content is the stream of its
// domain and path.
type fileSpec struct {
	path  string // slash-separated, relative to the root
	size  int64
	mode  fs.FileMode
	mtime int64 // Unix nanoseconds
}

type dirSpec struct {
	path  string
	mode  fs.FileMode
	mtime int64
}

type linkSpec struct {
	path, target string
	mtime        int64
}

// domainKey separates the content streams of a generated tree from those
// of every cycle applied to it (and of other seeds): a path's content is
// the stream of (domain, path), so no two files ever share content.
func domainKey(parts ...string) [32]byte {
	return sha256.Sum256([]byte(Version + "\x00" + strings.Join(parts, "\x00")))
}

// stream is the content generator of one file: PCG, seeded from a hash of
// the domain and the path; several GB/s per core.
func stream(domain [32]byte, p string) *rand.PCG {
	h := sha256.New()
	h.Write(domain[:])
	h.Write([]byte(p))
	var sum [32]byte
	h.Sum(sum[:0])
	return rand.NewPCG(binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16]))
}

// fill writes the next len(b) bytes of s into b.
func fill(s *rand.PCG, b []byte) {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], s.Uint64())
	}
	if i < len(b) {
		var t [8]byte
		binary.LittleEndian.PutUint64(t[:], s.Uint64())
		copy(b[i:], t[:])
	}
}

const writeBuf = 1 << 20

// writer writes files under root, from Jobs goroutines.
type writer struct {
	root   string
	domain [32]byte
	jobs   int
}

func (w writer) abs(p string) string { return filepath.Join(w.root, filepath.FromSlash(p)) }

func jobsOrDefault(j int) int {
	if j > 0 {
		return j
	}
	return runtime.GOMAXPROCS(0)
}

// writeFiles writes every file. With replace, each is written beside its
// path and renamed over it, as a publishing tool replaces an index; else
// the path must not exist yet. The order files are written in does not
// show in the result: every one is a function of its spec.
func (w writer) writeFiles(files []fileSpec, replace bool) error {
	// Huge files first, so that one does not finish alone at the end.
	order := make([]int, 0, len(files))
	for i, f := range files {
		if f.size >= 8*mib {
			order = append(order, i)
		}
	}
	for i, f := range files {
		if f.size < 8*mib {
			order = append(order, i)
		}
	}
	return forEach(min(jobsOrDefault(w.jobs), max(len(files), 1)), len(order), func(i int, buf []byte) error {
		return w.writeFile(files[order[i]], replace, buf)
	})
}

// forEach calls fn for 0..n-1 on jobs goroutines, each with a buffer of
// its own, and stops handing out work at the first error, which it
// returns.
func forEach(jobs, n int, fn func(i int, buf []byte) error) error {
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
		failed  atomic.Bool
	)
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, writeBuf)
			for !failed.Load() {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i, buf); err != nil {
					errOnce.Do(func() { first = err })
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func (w writer) writeFile(f fileSpec, replace bool, buf []byte) error {
	dst := w.abs(f.path)
	name := dst
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if replace {
		// Not a dotfile, which kubo skips and other tools do not: what an
		// interrupted cycle leaves behind, every importer sees alike.
		name = filepath.Join(filepath.Dir(dst), "mirrorgen-new-"+filepath.Base(dst))
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC | unix.O_NOFOLLOW | unix.O_CLOEXEC
	}
	fd, err := os.OpenFile(name, flags, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", f.path, err)
	}
	s := stream(w.domain, f.path)
	for left := f.size; left > 0; {
		b := buf[:min(left, int64(len(buf)))]
		fill(s, b)
		if _, err := fd.Write(b); err != nil {
			fd.Close()
			return fmt.Errorf("write %s: %w", f.path, err)
		}
		left -= int64(len(b))
	}
	if err := fd.Chmod(f.mode); err != nil {
		fd.Close()
		return fmt.Errorf("chmod %s: %w", f.path, err)
	}
	if err := fd.Close(); err != nil {
		return fmt.Errorf("close %s: %w", f.path, err)
	}
	if err := setMtime(name, f.mtime); err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	if replace {
		if err := os.Rename(name, dst); err != nil {
			return fmt.Errorf("replace %s: %w", f.path, err)
		}
	}
	return nil
}

// setMtime sets atime and mtime of p itself, never of a symlink's target.
func setMtime(p string, ns int64) error {
	ts := unix.NsecToTimespec(ns)
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set mtime: %w", err)
	}
	return nil
}

// chmodNoFollow changes the mode of the file or directory p, failing on a
// symlink instead of changing its target.
func chmodNoFollow(p string, mode fs.FileMode) error {
	fd, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	err = fd.Chmod(mode)
	if cerr := fd.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

// mkdirs creates the directories, parents first; each must be new.
func (w writer) mkdirs(dirs []dirSpec) error {
	for _, d := range dirs {
		if d.path == "." {
			continue
		}
		if err := os.Mkdir(w.abs(d.path), 0o755); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
	}
	return nil
}

// dirMeta sets the mode and mtime of directories once nothing more is
// created or removed in them.
func (w writer) dirMeta(dirs []dirSpec) error {
	for _, d := range dirs {
		p := w.abs(d.path)
		if err := chmodNoFollow(p, d.mode); err != nil {
			return fmt.Errorf("%s: %w", d.path, err)
		}
		if err := setMtime(p, d.mtime); err != nil {
			return fmt.Errorf("%s: %w", d.path, err)
		}
	}
	return nil
}

func (w writer) links(links []linkSpec) error {
	for _, l := range links {
		p := w.abs(l.path)
		if err := os.Symlink(l.target, p); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
		if err := setMtime(p, l.mtime); err != nil {
			return fmt.Errorf("%s: %w", l.path, err)
		}
	}
	return nil
}

// realDir checks, with lstat, that every component of the directory p
// below root is a directory and not a symlink; ok remembers the ones seen.
func (w writer) realDir(p string, ok map[string]bool) error {
	if p == "." || ok[p] {
		return nil
	}
	if err := w.realDir(parentOf(p), ok); err != nil {
		return err
	}
	fi, err := os.Lstat(w.abs(p))
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: %w", p, errNotDir)
	}
	ok[p] = true
	return nil
}

var errNotDir = errors.New("not a directory (a symlink is never followed)")

// parentOf is path.Dir for the slash-separated relative paths used here.
func parentOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "."
	}
	return p[:i]
}
