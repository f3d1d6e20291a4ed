package sync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/chunker"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// job is a file that must be read: chunked, or first checksummed to see
// whether its content is what the previous root holds.
type job struct {
	src             chunker.Source
	dir             *dirFD // src.Dir's: held while the job is queued or runs
	path, rel, name string
	size            int64
	checksum        bool // compare the content hash (xxh3) with prevXXH before chunking
	prev            *diff.Link
	prevXXH         uint64
	why             metadata.Why // what the quick check found
	res             *result
	it              *item
}

// file decides what one walked file needs, by rsync's quick check against
// what the previous root (or the index, when it agrees with the root) holds:
// nothing (reuse the CID unopened), a new root node over the stored leaves
// (mode only), or a read.
//
// dir and dirRel are the directory's path and source-relative path; a
// file's own are built only when it needs them, which an unchanged file
// does not (a million string pairs per walk of a mirror).
func (w *walker) file(ctx context.Context, at *dirFD, dir, dirRel string, e diff.Entry, prev *diff.Link, idx *blockstore.DirIndex) *result {
	if res := w.run.unchanged(ctx, e, dirRel, prev, idx); res != nil {
		return res
	}
	return w.fileAt(ctx, at, join(dir, e.Name), rel(dirRel, e.Name), e, prev, idx)
}

// fileAt is file for the file at path (relPath in the source), the entry
// e of the directory open as at (nil: path is the source itself).
func (w *walker) fileAt(ctx context.Context, at *dirFD, path, relPath string, e diff.Entry, prev *diff.Link, idx *blockstore.DirIndex) *result {
	r, jobs := w.run, w.jobs
	res := newResult()
	src := chunker.Source{Dir: at.at(), Name: e.Name, Path: path, Dev: e.Dev, Ino: e.Ino, NoLstat: e.NoLstat, NoCopy: r.refers(relPath, e.Name)}
	if at == nil {
		src.Name = path
	}
	j := job{src: src, dir: at, path: path, rel: relPath, name: e.Name, size: e.Stat.Size, res: res}
	if prev == nil {
		w.itemise(ctx, Change{Kind: '+', Path: relPath}, true)
		return r.submit(ctx, jobs, j)
	}
	known, ent, hasEnt, err := r.knownFile(ctx, relPath, e.Name, prev, idx)
	if errors.Is(err, errOnTarget) {
		// Read it and compare CIDs: the mtime is what cannot vouch.
		j.prev, j.why = prev, metadata.WhyMTime
		j.it = w.itemise(ctx, Change{Kind: '*', Path: relPath, Why: j.why}, false)
		return r.submit(ctx, jobs, j)
	}
	if err != nil || known.Type != metadata.File {
		w.itemise(ctx, Change{Kind: '*', Path: relPath, Why: metadata.WhyType}, true)
		j.why = metadata.WhyType
		return r.submit(ctx, jobs, j)
	}
	j.prev, j.why = prev, metadata.Changed(e.Stat, known)
	racy := r.racy(e.Stat.MTime)
	switch {
	case j.why&(metadata.WhySize|metadata.WhyType) != 0:
		w.itemise(ctx, Change{Kind: '*', Path: relPath, Why: j.why}, true)
		return r.submit(ctx, jobs, j)
	case !r.complete(ctx, prev):
		// Blocks of the previous version are gone: read the file again,
		// whatever its metadata says.
		j.it = w.itemise(ctx, Change{Kind: '*', Path: relPath, Why: j.why}, false)
		return r.submit(ctx, jobs, j)
	case (j.why == 0 || (j.why == metadata.WhyMode && !src.NoCopy)) && !racy && !r.opts.Checksum &&
		r.storedAsWanted(e, ent, hasEnt, func() string { return relPath }):
		// A referenced single-leaf file given a new mode would be copied
		// by Reroot (its root is its leaf): it is read and referenced.
		return r.sameContent(ctx, j, e.Stat, ent, hasEnt, w)
	}
	// The mtime moved (a touch or a same-size rewrite look alike), the
	// file is racily clean, or --checksum asks: read it.
	j.it = w.itemise(ctx, Change{Kind: '*', Path: relPath, Why: j.why}, false)
	if hasEnt && ent.XXH != 0 && ent.Ino == 0 && !src.NoCopy {
		// Not for references: they name the file's mtime, so a file
		// touched is referenced again.
		j.checksum, j.prevXXH = true, ent.XXH
	}
	return r.submit(ctx, jobs, j)
}

// unchanged is file's common case: the index entry names the CID the
// previous root links, and the quick check finds nothing changed. nil
// means the file needs file's full look (which finds the entry again).
func (r *run) unchanged(ctx context.Context, e diff.Entry, dirRel string, prev *diff.Link, idx *blockstore.DirIndex) *result {
	if prev == nil || idx == nil || r.opts.Checksum || r.racy(e.Stat.MTime) {
		return nil
	}
	ent, ok := idx.Find(e.Name)
	if !ok || !ent.Cid.Equals(prev.Cid) {
		return nil
	}
	if metadata.Changed(e.Stat, indexKnown(ent)) != 0 || !r.complete(ctx, prev) ||
		!r.storedAsWanted(e, ent, true, func() string { return rel(dirRel, e.Name) }) {
		return nil
	}
	return r.sameContent(ctx, job{name: e.Name, prev: prev}, e.Stat, ent, true, nil)
}

// complete reports whether every block of the previous file DAG at l is in
// the store, so reusing it unread leaves no hole (blocks lost to a crash of
// the disk, or removed by fsck --repair, make the file be read again). Only
// the few blocks above the leaves of large files are read (Store.Reach).
// The ref's current root needs no look unless fsck found damage: it was
// complete when its ref moved, and gc keeps it whole; that saves a stat
// per block of every unchanged file, a third of an unchanged re-sync.
func (r *run) complete(ctx context.Context, l *diff.Link) bool {
	if r.trusted {
		return true
	}
	return r.store.Reach(ctx, l.Cid, l.Tsize, func(cid.Cid) bool { return true }) == nil
}

// knownFile is what the previous root holds for a file: from the index
// (idx, the directory's entries, or a lookup of relPath without one) when
// its entry names the same CID, else from the file's root node.
func (r *run) knownFile(ctx context.Context, relPath, name string, prev *diff.Link, idx *blockstore.DirIndex) (metadata.Known, blockstore.IndexEntry, bool, error) {
	var ent blockstore.IndexEntry
	var ok bool
	if idx != nil {
		ent, ok = idx.Find(name)
	} else {
		ent, ok = r.index.Get(ctx, relPath)
	}
	if ok && ent.Cid.Equals(prev.Cid) {
		return indexKnown(ent), ent, true, nil
	}
	if r.fromTarget != nil {
		return metadata.Known{}, blockstore.IndexEntry{}, false, errOnTarget
	}
	k, _, err := r.tree.Known(ctx, prev.Cid)
	if err != nil {
		return k, blockstore.IndexEntry{}, false, err
	}
	return r.knownMeta(k), blockstore.IndexEntry{}, false, nil
}

// indexKnown is what an index entry says of its file.
func indexKnown(ent blockstore.IndexEntry) metadata.Known {
	return metadata.Known{Stat: metadata.Stat{Type: metadata.File, Size: ent.Size, Mode: ent.Mode, MTime: ent.MTime}, HasMode: true, HasMTime: true}
}

// sameContent handles a file whose data is known to be unchanged: reuse
// its CID, or give it a new root when stored metadata changed.
// Only a walker may itemise (the order of items is the walk's), so a
// worker passes no walker and reports through its pending item.
func (r *run) sameContent(ctx context.Context, j job, st metadata.Stat, ent blockstore.IndexEntry, hasEnt bool, w *walker) *result {
	r.files.Add(1)
	r.bytes.Add(st.Size)
	link := diff.Link{Name: j.name, Cid: j.prev.Cid, Tsize: j.prev.Tsize}
	if !r.storesAny(j.why) {
		if j.why == 0 {
			r.fileCounts.unchanged.Add(1)
		} else {
			r.fileCounts.meta.Add(1)
		}
		if !hasEnt || j.why != 0 {
			r.putIndex(ctx, j.rel, link, st, ent.XXH, fileID{ent.Dev, ent.Ino, ent.CTime})
		}
		return resolved(link)
	}
	nd, err := r.w.Get(ctx, j.prev.Cid)
	if err != nil {
		return failed(fmt.Errorf("%s: previous version: %w", j.path, err))
	}
	res, err := r.imp.Reroot(ctx, nd, st)
	if err != nil {
		return failed(fmt.Errorf("%s: %w", j.path, err))
	}
	r.fileCounts.meta.Add(1)
	if w != nil {
		w.itemise(ctx, Change{Kind: '*', Path: j.rel, Why: j.why}, true)
	}
	link.Cid, link.Tsize = res.Cid, res.Tsize
	r.putIndex(ctx, j.rel, link, st, ent.XXH, fileID{ent.Dev, ent.Ino, ent.CTime})
	return resolved(link)
}

// sameDataAs reports whether the file just read, res, holds the data of
// its previous version, prev: whether prev's root given res's metadata is
// res's root. It answers where no content hash of prev is known (no index
// entry: verify, --base), so that a file only touched is itemised (mtime)
// and counted metadata only, as it is where the index has its hash.
func (r *run) sameDataAs(ctx context.Context, prev cid.Cid, res chunker.Result) bool {
	nd, err := r.w.Get(ctx, prev)
	if err != nil {
		return false
	}
	again, err := r.probe.Reroot(ctx, nd, res.Stat)
	return err == nil && again.Cid.Equals(res.Cid)
}

func (r *run) putIndex(ctx context.Context, relPath string, l diff.Link, st metadata.Stat, xxh uint64, id fileID) {
	if r.opts.DryRun {
		return
	}
	// A failed index write only makes the next run slower.
	_ = r.index.Put(ctx, relPath, blockstore.IndexEntry{Cid: l.Cid, Size: st.Size, MTime: st.MTime, Mode: st.Mode, XXH: xxh, Dev: id.dev, Ino: id.ino, CTime: id.ctime})
}

func (r *run) submit(ctx context.Context, jobs chan<- job, j job) *result {
	if r.opts.DryRun && !j.checksum && (j.prev == nil || j.why&(metadata.WhySize|metadata.WhyType) != 0) {
		// The change is already known; a dry run does not read the file.
		if j.prev == nil {
			r.fileCounts.added.Add(1)
		} else {
			r.fileCounts.modified.Add(1)
		}
		j.it.resolve(true, 0)
		r.files.Add(1)
		r.bytes.Add(j.size) // as the real run counts it, from the file it reads
		j.res.link = diff.Link{Name: j.name}
		j.res.complete()
		return j.res
	}
	r.opts.Progress.Queued.Add(j.size)
	j.dir.hold()
	select {
	case jobs <- j:
	case <-ctx.Done():
		j.dir.release()
		j.it.resolve(false, 0)
		j.res.err = context.Cause(ctx)
		j.res.complete()
	}
	return j.res
}

func (r *run) doJob(ctx context.Context, fail context.CancelCauseFunc, j job) {
	defer j.res.complete()
	defer j.dir.release()
	if ctx.Err() != nil {
		j.it.resolve(false, 0)
		j.res.err = context.Cause(ctx)
		return
	}
	if j.checksum {
		xxh, st, n, err := r.imp.Checksum(ctx, j.src)
		r.read.Add(n)
		if err == nil && xxh == j.prevXXH && st.Size == n {
			res := r.sameContent(ctx, j, st, blockstore.IndexEntry{XXH: xxh}, false, nil)
			res.wait()
			j.res.link, j.res.err = res.link, res.err
			if res.err != nil {
				fail(res.err)
			}
			j.it.resolve(!res.link.Cid.Equals(j.prev.Cid), j.why&^metadata.WhyContent)
			return
		}
	}
	res, err := r.imp.File(ctx, j.src)
	r.read.Add(res.Read)
	if err != nil {
		j.it.resolve(false, 0)
		if errors.Is(err, chunker.ErrNotRegular) {
			r.warn(j.path, fmt.Errorf("%w; skipped", err))
			j.res.skip = true
			return
		}
		if errors.Is(err, fs.ErrNotExist) {
			// Deleted since the directory was listed: left out, as if the
			// listing had been taken a moment later (what ReadDir does).
			j.res.skip = true
			return
		}
		j.res.err = err
		fail(err)
		return
	}
	r.files.Add(1)
	r.bytes.Add(res.Stat.Size)
	r.opts.Progress.FilesDone.Add(1)
	link := diff.Link{Name: j.name, Cid: res.Cid, Tsize: res.Tsize}
	sameData := j.prevXXH != 0 && res.XXH == j.prevXXH
	if j.prev != nil && j.prevXXH == 0 && j.why.OnlyMeta() && !res.Cid.Equals(j.prev.Cid) {
		sameData = r.sameDataAs(ctx, j.prev.Cid, res)
	}
	switch {
	case j.prev == nil:
		r.fileCounts.added.Add(1)
	case res.Cid.Equals(j.prev.Cid):
		r.fileCounts.unchanged.Add(1)
	case sameData:
		r.fileCounts.meta.Add(1)
	default:
		r.fileCounts.modified.Add(1)
	}
	if j.prev != nil {
		why := j.why
		if !sameData {
			why |= metadata.WhyContent
		}
		j.it.resolve(!res.Cid.Equals(j.prev.Cid), why)
	}
	var id fileID
	if j.src.NoCopy {
		id = fileID{res.Dev, res.Ino, res.CTime}
	}
	r.putIndex(ctx, j.rel, link, res.Stat, res.XXH, id)
	j.res.link = link
}
