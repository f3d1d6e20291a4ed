package mirrorgen

import "io/fs"

// The cycle's bookkeeping: each records what changes on disk and in the
// model of the tree after it.

func (c *cycle) exists(p string) bool {
	_, f := c.files[p]
	_, b := c.before[p]
	return f || c.dirs[p] || b
}

func (c *cycle) anyAffected(ps []string) bool {
	for _, p := range ps {
		if c.affected[p] {
			return true
		}
	}
	return false
}

func (c *cycle) enter(p string) {
	d := parentOf(p)
	c.ensureDir(d)
	c.children[d]++
	c.changedDir[d] = true
}

func (c *cycle) leave(p string) {
	d := parentOf(p)
	c.children[d]--
	c.changedDir[d] = true
	c.prune[d] = true
}

func (c *cycle) ensureDir(d string) {
	if c.dirs[d] {
		return
	}
	c.enter(d)
	c.dirs[d] = true
	mode := fs.FileMode(0o755)
	if c.r.IntN(50) == 0 {
		mode = 0o775
	}
	c.newDirs = append(c.newDirs, dirSpec{path: d, mode: mode})
	c.res.DirsAdded++
}

func (c *cycle) addFile(p string, size int64, mode fs.FileMode) {
	c.enter(p)
	c.files[p] = size
	c.affected[p] = true
	c.writes = append(c.writes, fileSpec{path: p, size: size, mode: mode, mtime: c.now - c.r.Int64N(6*hour)})
	c.res.Added++
}

func (c *cycle) removeFile(p string) {
	if _, ok := c.files[p]; !ok {
		return
	}
	delete(c.files, p)
	c.affected[p] = true
	c.removes = append(c.removes, p)
	c.leave(p)
	c.res.Removed++
}

func (c *cycle) moveFile(from, to string) {
	c.enter(to)
	c.files[to] = c.files[from]
	delete(c.files, from)
	c.affected[from], c.affected[to] = true, true
	c.moves = append(c.moves, [2]string{from, to})
	c.leave(from)
	c.res.Archived++
}

// rewrite replaces an existing file with new content of size bytes; it
// reports whether there was such a file.
func (c *cycle) rewrite(p string, size int64) bool {
	e, ok := c.before[p]
	if _, still := c.files[p]; !ok || e.kind != 'f' || !still || c.affected[p] {
		return false
	}
	c.files[p] = size
	c.affected[p] = true
	c.changedDir[parentOf(p)] = true // replaced by a rename
	c.rewrites = append(c.rewrites, fileSpec{path: p, size: size, mode: e.mode, mtime: c.now - c.r.Int64N(hour)})
	c.res.IndexRewrites++
	return true
}
