package pull

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
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
	if err := fsat.Fstat(fd, &st); err != nil {
		return destID{}, err
	}
	return destID{Path: path, Dev: uint64(st.Dev), Ino: uint64(st.Ino), Birth: fsat.BirthTime(fd)}, nil
}

// checkEmpty refuses a DEST that holds anything, for a first pull not told
// what to do with it: the pull would write ROOT over it and remove what
// ROOT lacks, and a DEST named by mistake (a home directory, a path
// mistyped, an unmounted filesystem's mount point) would be lost.
func checkEmpty(destfd int, dest string) error {
	names, err := fsat.ReadNames(destfd)
	if err != nil {
		return fmt.Errorf("DEST %s: %w", dest, err)
	}
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	const show = 5
	var list []string
	for _, n := range names[:min(len(names), show)] {
		list = append(list, strconv.Quote(n))
	}
	if len(names) > show {
		list = append(list, fmt.Sprintf("and %d more", len(names)-show))
	}
	return fmt.Errorf("DEST %s is not empty (%s) and no pull into it is known: "+
		"--delete makes it exactly ROOT, removing what ROOT lacks; --no-delete writes ROOT over it and keeps the rest",
		dest, strings.Join(list, ", "))
}

// freeSpace is what the filesystem of the directory open as fd still lets
// a user other than root write.
func freeSpace(fd int) (int64, error) {
	var s unix.Statfs_t
	if err := unix.Fstatfs(fd, &s); err != nil {
		return 0, err
	}
	return int64(min(uint64(s.Bavail)*uint64(s.Bsize), math.MaxInt64/2)), nil
}
