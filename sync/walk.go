package sync

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"

	"github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// walker walks part of the tree on one goroutine. Subdirectories go to
// new walkers while slots are free, so listing, lstat and the quick check
// of many directories run at once; each walker queues its items in its
// own channel, placed in its parent's where the subtree belongs, so the
// listing comes out in walk order all the same.
type walker struct {
	*run
	jobs       chan<- job
	fail       context.CancelCauseFunc
	items      chan *item // nil when nobody listens
	quietUnder string     // items under this new directory are not listed
}

// walkRoot walks SRC, reading what changed on the run's workers, and
// returns its root CID once every file is read and every directory built.
func (r *run) walkRoot(ctx context.Context, src string, prev cid.Cid) (cid.Cid, error) {
	top, err := topEntry(src)
	if err != nil {
		return cid.Undef, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	printed := r.startItems()
	jobs, read := r.startReaders(ctx, cancel)
	var prevLink *diff.Link
	if r.reuse {
		prevLink = &diff.Link{Cid: prev}
	}
	// Walkers besides the top one; more than the cores, as a walk of a
	// tree not in the page cache waits on the disk.
	r.slots = make(chan struct{}, 2*r.opts.Workers)
	w := &walker{run: r, jobs: jobs, fail: cancel, items: r.items}
	var res *result
	switch top.Stat.Type {
	case metadata.Dir:
		res = w.walkDir(ctx, nil, false, src, "", "", top.Stat, prevLink)
	case metadata.File:
		res = w.fileAt(ctx, nil, src, "", top, prevLink, nil)
	default:
		res = w.symlink(ctx, src, "", top, prevLink)
	}
	r.walkers.Wait()
	r.opts.Progress.WalkDone.Store(true)
	close(jobs)
	res.wait()
	read.Wait()
	if r.items != nil {
		close(r.items)
		printed.Wait()
	}
	if err := context.Cause(ctx); err != nil {
		return cid.Undef, err
	}
	if res.err != nil {
		return cid.Undef, res.err
	}
	if res.skip {
		return cid.Undef, fmt.Errorf("source %s was skipped", src)
	}
	return res.link.Cid, nil
}

// topEntry is SRC as the walk starts from it: its lstat, and a symlink's
// target. Anything but a directory, a file or a symlink is refused.
func topEntry(src string) (diff.Entry, error) {
	var sys unix.Stat_t
	if err := unix.Lstat(src, &sys); err != nil {
		return diff.Entry{}, fmt.Errorf("source: %w", &fs.PathError{Op: "lstat", Path: src, Err: err})
	}
	e := diff.Entry{Name: filepath.Base(src), Stat: metadata.FromStatT(&sys), Dev: uint64(sys.Dev), Ino: uint64(sys.Ino), CTime: sys.Ctim.Nano()}
	switch e.Stat.Type {
	case metadata.Dir, metadata.File:
	case metadata.Symlink:
		target, err := os.Readlink(src)
		if err != nil {
			return diff.Entry{}, fmt.Errorf("source: %w", err)
		}
		e.Target = target
	default:
		return diff.Entry{}, fmt.Errorf("source %s is a %s, not a file or directory", src, e.Stat.Type)
	}
	return e, nil
}

// startReaders starts the workers that read the files the walk queues on
// jobs, until it is closed: the WaitGroup is done once they have.
func (r *run) startReaders(ctx context.Context, cancel context.CancelCauseFunc) (chan job, *gosync.WaitGroup) {
	// Buffered, so that a walker queues a changed file and walks on rather
	// than wait for a reader; a job is a path and a stat, and the files
	// being read stay at Workers.
	jobs := make(chan job, 256*r.opts.Workers)
	r.linger = make(chan struct{}, lingerSlots(cap(jobs)))
	var wg gosync.WaitGroup
	for range r.opts.Workers {
		wg.Go(func() {
			for j := range jobs {
				r.doJob(ctx, cancel, j)
			}
		})
	}
	return jobs, &wg
}

// dir walks a subdirectory on a new walker if a slot is free, else on
// this one, opening it relative to its parent's descriptor, at (which a
// new walker holds until it has: the parent's walk may be over by then).
func (w *walker) dir(ctx context.Context, at *dirFD, path, relPath, name string, st metadata.Stat, prev *diff.Link) *result {
	select {
	case w.slots <- struct{}{}:
	default:
		return w.walkDir(ctx, at, false, path, relPath, name, st, prev)
	}
	sub := &walker{run: w.run, jobs: w.jobs, fail: w.fail, quietUnder: w.quietUnder}
	if w.items != nil {
		sub.items = make(chan *item, 256)
		select {
		case w.items <- &item{sub: sub.items}:
		case <-ctx.Done():
			<-w.slots
			return failed(context.Cause(ctx))
		}
	}
	out := newResult()
	w.walkers.Add(1)
	at.hold()
	go func() {
		res := sub.walkDir(ctx, at, true, path, relPath, name, st, prev)
		if sub.items != nil {
			close(sub.items)
		}
		<-w.slots
		w.walkers.Done()
		res.wait()
		out.link, out.skip, out.err = res.link, res.skip, res.err
		out.complete()
	}()
	return out
}

// join is filepath.Join for a directory path and a name from its
// listing, without cleaning what is clean already.
func join(dir, name string) string {
	if strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

// rel joins a source-relative path; the source itself is "" (and is
// itemised as "/").
func rel(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "/" + name
}

// dirWalk is one directory being walked: where it is, its lstat, and its
// previous version (prev nil: none to compare with; pd nil: prev is not a
// directory, or could not be read).
type dirWalk struct {
	path, relPath, name string
	st                  metadata.Stat
	prev                *diff.Link
	pd                  *diff.PrevDir
	idx                 *blockstore.DirIndex // prev's entries in the file index
}

// walkDir merges the listing of the directory called name in the one open
// as at (nil: the directory at path) with its previous version, queues
// what must be read, recurses into subdirectories, and returns a result
// that completes once every child has and the directory's node is built
// (or reused). A full job queue blocks the walker, which is what bounds
// memory. With handed, at was held for this walk, which lets it go once
// the directory is open.
func (w *walker) walkDir(ctx context.Context, at *dirFD, handed bool, path, relPath, name string, st metadata.Stat, prev *diff.Link) *result {
	wd := &dirWalk{path: path, relPath: relPath, name: name, st: st, prev: prev}
	if prev != nil {
		wd.idx = w.index.Dir(relPath)
		defer wd.idx.Close()
		wd.pd = w.previousListing(ctx, wd)
	}
	entries, d, res := w.list(ctx, at, handed, wd)
	if res != nil {
		return res
	}
	defer d.walked(ctx)
	if w.itemiseDir(ctx, wd) {
		defer func() { w.quietUnder = "" }()
	}
	children := w.children(ctx, d, wd, entries)
	out := newResult()
	// Most directories of a re-sync have every child settled by now (no
	// file queued, no subdirectory on another walker): finished here.
	whenAll(children, func() { w.finishDir(ctx, wd, children, out) })
	return out
}

// list reads wd's entries and opens it, letting at go if it was handed to
// this walk. A directory that cannot be read fails the run at the top;
// below it keeps its previous version, or is skipped: res is its result.
func (w *walker) list(ctx context.Context, at *dirFD, handed bool, wd *dirWalk) (entries []diff.Entry, d *dirFD, res *result) {
	r := w.run
	atName := wd.name
	if at == nil {
		atName = wd.path
	}
	// A file with no previous version to compare with is opened without
	// an lstat before: the open's fstat tells what the import needs. A dry
	// run opens nothing, and counts the bytes of what it would read.
	lstatFiles := wd.pd != nil || r.opts.DryRun
	entries, fd, err := diff.ReadDirAt(at.at(), atName, wd.path, wd.relPath, r.opts.Filter, lstatFiles)
	if handed {
		at.release()
	}
	if err == nil {
		return entries, r.newDirFD(fd), nil
	}
	if wd.relPath == "" {
		err = fmt.Errorf("source: %w", err)
		w.fail(err)
		return nil, nil, failed(err)
	}
	if keep := r.previousDir(ctx, wd.relPath, wd.prev, wd.pd); keep != nil {
		// Never turn a failed read into deletions: keep what the
		// previous root has here.
		r.warn(wd.path, fmt.Errorf("%w; keeping the previous version", err))
		return nil, nil, resolved(diff.Link{Name: wd.name, Cid: keep.Cid, Tsize: keep.Tsize})
	}
	r.warn(wd.path, fmt.Errorf("%w; skipped", err))
	return nil, nil, skippedResult()
}

// itemiseDir queues wd's own change: its metadata, or its type, or that it
// is new. A new subtree is one change, as `diff` reports it: quiet says
// this walk now keeps quiet under wd, until the caller clears quietUnder.
func (w *walker) itemiseDir(ctx context.Context, wd *dirWalk) (quiet bool) {
	if wd.pd != nil {
		if why := w.dirWhy(wd.st, wd.pd.Known); why != 0 && w.storesAny(why) {
			w.itemise(ctx, Change{Kind: '*', Path: wd.relPath + "/", Why: why}, true)
		}
		return false
	}
	if wd.relPath == "" {
		return false
	}
	if wd.prev != nil {
		w.itemise(ctx, Change{Kind: '*', Path: wd.relPath + "/", Why: metadata.WhyType}, true)
	} else {
		w.itemise(ctx, Change{Kind: '+', Path: wd.relPath + "/"}, true)
	}
	if w.quietUnder != "" {
		return false
	}
	w.quietUnder = wd.relPath + "/"
	return true
}

// children merges wd's listing, open as d, with its previous entries:
// each entry gets a result (a file queued to be read or known unchanged, a
// subdirectory walked, a symlink built), and each previous entry the
// listing lacks is itemised as removed.
func (w *walker) children(ctx context.Context, d *dirFD, wd *dirWalk, entries []diff.Entry) []*result {
	r := w.run
	var prevEntries []diff.Link
	if wd.pd != nil {
		prevEntries = wd.pd.Entries
	}
	children := make([]*result, 0, len(entries))
	r.opts.Progress.Entries.Add(int64(len(entries)))
	diff.Merge(entries, prevEntries, func(e *diff.Entry, p *diff.Link) int { return strings.Compare(e.Name, p.Name) }, func(e *diff.Entry, p *diff.Link) {
		if ctx.Err() != nil {
			return
		}
		if e == nil {
			w.removed(ctx, rel(wd.relPath, p.Name), p, wd.idx)
			return
		}
		if e.Stat.Type == metadata.File {
			children = append(children, w.file(ctx, d, wd.path, wd.relPath, *e, p, wd.idx))
			return
		}
		cp := join(wd.path, e.Name)
		crel := rel(wd.relPath, e.Name)
		switch e.Stat.Type {
		case metadata.Dir:
			children = append(children, w.dir(ctx, d, cp, crel, e.Name, e.Stat, p))
		case metadata.Symlink:
			children = append(children, w.symlink(ctx, cp, crel, *e, p))
		default:
			r.warn(cp, fmt.Errorf("%s: UnixFS cannot store a %s; skipped", cp, e.Stat.Type))
		}
	})
	return children
}

// removed itemises an entry of the previous root that is gone. Its type
// comes from the index when the directory's entries name its CID (a file),
// else from its node.
func (w *walker) removed(ctx context.Context, relPath string, p *diff.Link, idx *blockstore.DirIndex) {
	var k metadata.Known
	var err error
	if ent, ok := idx.Find(p.Name); ok && ent.Cid.Equals(p.Cid) {
		k.Type = metadata.File
	} else {
		k, _, err = w.tree.Known(ctx, p.Cid)
	}
	switch {
	case err != nil:
		w.itemise(ctx, Change{Kind: '-', Path: relPath}, true)
	case k.Type == metadata.Dir:
		w.dirCounts.removed.Add(1)
		w.itemise(ctx, Change{Kind: '-', Path: relPath + "/"}, true)
	default:
		if k.Type == metadata.File {
			w.fileCounts.removed.Add(1)
		}
		w.itemise(ctx, Change{Kind: '-', Path: relPath}, true)
	}
}

func (w *walker) symlink(ctx context.Context, path, relPath string, e diff.Entry, prev *diff.Link) *result {
	nd, err := symlinkNode(w.opts.Profile, e.Target, w.meta.MTimeOf(e.Stat))
	if err == nil {
		err = w.w.Add(ctx, nd)
	}
	if err != nil {
		return failed(fmt.Errorf("symlink %s: %w", path, err))
	}
	w.symlinks.Add(1)
	size, _ := nd.Size()
	switch {
	case prev == nil:
		w.itemise(ctx, Change{Kind: '+', Path: relPath}, true)
	case !nd.Cid().Equals(prev.Cid):
		why := metadata.WhyContent
		if k, pn, err := w.tree.Known(ctx, prev.Cid); err == nil {
			if why = metadata.Changed(e.Stat, w.knownMeta(k)) &^ metadata.WhySize; why == 0 || k.Type == metadata.Symlink {
				if t, err := diff.SymlinkTarget(pn); err == nil && t != e.Target {
					why |= metadata.WhyContent
				}
			}
		}
		w.itemise(ctx, Change{Kind: '*', Path: relPath, Why: why}, true)
	}
	return resolved(diff.Link{Name: e.Name, Cid: nd.Cid(), Tsize: size})
}
