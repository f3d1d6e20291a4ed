// Package diff owns walking the source tree and comparing it with the
// previous root: directory listings in a stable byte order, the entry
// filters (hidden files), and what changed between two states.
package diff

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// Entry is one child of a walked directory.
type Entry struct {
	Name   string
	Stat   metadata.Stat
	Target string // symlink target
	link   Link   // set when the entry comes from a root (Tree.Roots)
}

// ReadDir lists dir's children sorted by name as bytes (the order UnixFS
// uses), each lstat'ed and never followed; rel is dir's path relative to
// the source ("" at the top) for the filter. Excluded names are not
// lstat'ed unless a directory-only rule needs their type. A child that
// vanishes between the listing and its lstat is left out, as if the
// listing had been taken a moment later.
func ReadDir(dir, rel string, f Filter) ([]Entry, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", dir, err)
	}
	sort.Strings(names)
	out := make([]Entry, 0, len(names))
	typed := f.needsStat()
	for _, name := range names {
		crel := name
		if rel != "" {
			crel = rel + "/" + name
		}
		if !typed && !f.Include(crel, name, false) {
			continue
		}
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if typed && !f.Include(crel, name, fi.IsDir()) {
			continue
		}
		e := Entry{Name: name, Stat: metadata.FromFileInfo(fi)}
		if e.Stat.Type == metadata.Symlink {
			if e.Target, err = os.Readlink(p); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return nil, err
			}
		}
		out = append(out, e)
	}
	return out, nil
}
