package pull

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// realPath is path made absolute, with every symlink in the part of it
// that exists resolved (DEST may not exist yet).
func realPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	var rest []string
	for p := abs; ; {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(append([]string{r}, rest...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return abs, nil
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// checkApart refuses a DEST that is, contains or lies inside the
// repository: pull makes DEST match ROOT, removing what ROOT lacks, and
// the repository (the blocks it may be reading, its own state) is not
// ROOT's.
func checkApart(dest, repo string) error {
	d, err := realPath(dest)
	if err != nil {
		return fmt.Errorf("DEST %s: %w", dest, err)
	}
	r, err := realPath(repo)
	if err != nil {
		return fmt.Errorf("repository %s: %w", repo, err)
	}
	switch {
	case within(d, r):
		return fmt.Errorf("DEST %s lies inside the repository %s: pull would write over it", dest, repo)
	case within(r, d):
		return fmt.Errorf("DEST %s contains the repository %s: pull would remove it", dest, repo)
	}
	return nil
}

// identify names the directory DEST, open as fd: its real path, device,
// inode and birth time.
func identify(fd int, dest string) (destID, error) {
	path, err := realPath(dest)
	if err != nil {
		return destID{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return destID{}, err
	}
	return destID{Path: path, Dev: uint64(st.Dev), Ino: uint64(st.Ino), Birth: birthTime(fd)}, nil
}
