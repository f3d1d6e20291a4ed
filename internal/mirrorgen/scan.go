package mirrorgen

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// entry is one thing in a tree, as lstat sees it.
type entry struct {
	path   string // slash-separated, relative to the root; "." is the root
	kind   byte   // 'f' regular file, 'd' directory, 'l' symlink, '?' other
	size   int64
	mode   fs.FileMode // permission and setuid/setgid/sticky bits
	mtime  int64       // Unix nanoseconds
	target string      // of a symlink
}

// scan lists the tree at root, root first and then sorted by path; it
// never descends into a symlink.
func scan(root string) ([]entry, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("scan %s: not a directory", root)
	}
	out := []entry{toEntry(".", fi, "")}
	var walk func(rel string) error
	walk = func(rel string) error {
		abs := filepath.Join(root, filepath.FromSlash(rel))
		ents, err := os.ReadDir(abs)
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		for _, de := range ents {
			p := de.Name()
			if rel != "." {
				p = rel + "/" + p
			}
			info, err := de.Info() // lstat
			if err != nil {
				return fmt.Errorf("scan: %w", err)
			}
			var target string
			if info.Mode()&fs.ModeSymlink != 0 {
				if target, err = os.Readlink(filepath.Join(abs, de.Name())); err != nil {
					return fmt.Errorf("scan: %w", err)
				}
			}
			out = append(out, toEntry(p, info, target))
			if info.IsDir() {
				if err := walk(p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk("."); err != nil {
		return nil, err
	}
	slices.SortFunc(out[1:], func(a, b entry) int { return strings.Compare(a.path, b.path) })
	return out, nil
}

func toEntry(p string, fi fs.FileInfo, target string) entry {
	e := entry{path: p, mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
		mtime: fi.ModTime().UnixNano(), target: target}
	switch {
	case fi.Mode().IsRegular():
		e.kind, e.size = 'f', fi.Size()
	case fi.IsDir():
		e.kind = 'd'
	case fi.Mode()&fs.ModeSymlink != 0:
		e.kind = 'l'
	default:
		e.kind = '?'
	}
	return e
}

// Stats describes a tree.
type Stats struct {
	Files    int   `json:"files"`
	Bytes    int64 `json:"bytes"`
	Dirs     int   `json:"dirs"`
	Symlinks int   `json:"symlinks"`
	// Size percentiles of regular files.
	SizeP10 int64 `json:"size_p10"`
	SizeP50 int64 `json:"size_p50"`
	SizeP90 int64 `json:"size_p90"`
	SizeP99 int64 `json:"size_p99"`
	SizeMax int64 `json:"size_max"`
	Over1M  int   `json:"files_over_1MiB"`
	// The directory with the most entries.
	LargestDir        string `json:"largest_dir"`
	LargestDirEntries int    `json:"largest_dir_entries"`
	// Regular files by permission bits, e.g. "644".
	Modes map[string]int `json:"modes"`
}

// Stat walks the tree at root.
func Stat(root string) (Stats, error) {
	ents, err := scan(root)
	if err != nil {
		return Stats{}, err
	}
	return statsOf(ents), nil
}

func statsOf(ents []entry) Stats {
	s := Stats{Modes: map[string]int{}}
	var sizes []int64
	children := map[string]int{}
	for _, e := range ents {
		if e.path != "." {
			children[parentOf(e.path)]++
		}
		switch e.kind {
		case 'f':
			s.Files++
			s.Bytes += e.size
			sizes = append(sizes, e.size)
			s.Modes[strconv.FormatUint(uint64(e.mode.Perm()), 8)]++
			if e.size > mib {
				s.Over1M++
			}
		case 'd':
			s.Dirs++
		case 'l':
			s.Symlinks++
		}
	}
	for _, d := range sortedKeys(children) {
		if children[d] > s.LargestDirEntries {
			s.LargestDir, s.LargestDirEntries = d, children[d]
		}
	}
	if len(sizes) > 0 {
		slices.Sort(sizes)
		q := func(f float64) int64 { return sizes[int(f*float64(len(sizes)-1))] }
		s.SizeP10, s.SizeP50, s.SizeP90, s.SizeP99, s.SizeMax = q(0.1), q(0.5), q(0.9), q(0.99), sizes[len(sizes)-1]
	}
	return s
}

// Fingerprint is a SHA-256 over every entry of the tree at root: path,
// type, mode, size, mtime, the SHA-256 of a file's content, a symlink's
// target. Two trees have the same fingerprint exactly when everything a
// mirror copies (rsync -a) is the same. If list is not nil, the rows that
// are hashed are written to it. Contents are hashed by jobs goroutines
// (0: GOMAXPROCS).
func Fingerprint(root string, jobs int, list io.Writer) (string, error) {
	ents, err := scan(root)
	if err != nil {
		return "", err
	}
	sums := make([]string, len(ents))
	err = forEach(jobsOrDefault(jobs), len(ents), func(i int, buf []byte) error {
		if ents[i].kind != 'f' {
			return nil
		}
		sum, err := hashFile(filepath.Join(root, filepath.FromSlash(ents[i].path)), buf)
		if err != nil {
			return fmt.Errorf("fingerprint: %s: %w", ents[i].path, err)
		}
		sums[i] = sum
		return nil
	})
	if err != nil {
		return "", err
	}
	h := sha256.New()
	var out io.Writer = h
	if list != nil {
		out = io.MultiWriter(h, list)
	}
	for i, e := range ents {
		var row string
		switch e.kind {
		case 'f':
			row = fmt.Sprintf("%q f %04o %d %d %s\n", e.path, e.mode, e.size, e.mtime, sums[i])
		case 'd':
			row = fmt.Sprintf("%q d %04o %d\n", e.path, e.mode, e.mtime)
		case 'l':
			// A symlink's own mode is not portable (always 0777 on Linux).
			row = fmt.Sprintf("%q l %d %q\n", e.path, e.mtime, e.target)
		default:
			row = fmt.Sprintf("%q ? %04o %d\n", e.path, e.mode, e.mtime)
		}
		if _, err := io.WriteString(out, row); err != nil {
			return "", fmt.Errorf("fingerprint: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(p string, buf []byte) (string, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	for {
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return "", err
		}
	}
}
