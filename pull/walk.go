package pull

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"

	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// dirNode is a directory of the root being written. Its descriptor stays
// open while its entries are being written and is closed when the last one
// is done; its mode and mtime are set at the very end (finish), after
// every entry under it, since each write into it moves its mtime.
type dirNode struct {
	parent *dirNode
	name   string
	rel    string
	depth  int
	fd     int
	cid    cid.Cid
	meta   meta
	// mode is what the directory had before this run, or 0 if this run
	// created it: what it gets back if the root stores no mode.
	mode    uint32
	created bool
	before  metadata.Stat // its lstat before this run touched it

	pending atomic.Int64 // entries not yet done, +1 while listing

	// dirty: something in this directory was written or removed, or its
	// mode or mtime are not the root's; below: the same of a descendant.
	// finish visits only what is marked, so an update costs no walk of the
	// directories it did not touch.
	dirty, below atomic.Bool
	// foreign: it holds entries ROOT lacks that were kept (Options.Delete).
	foreign atomic.Bool

	mu        sync.Mutex
	deletes   []string // local entries not in the root, removed at the end
	leftovers []string // temporary names, removed at the end (gone if this run's)
	children  []*dirNode
}

// touch marks d as changed, and its ancestors as having a change below.
func (d *dirNode) touch() {
	d.dirty.Store(true)
	for a := d.parent; a != nil && !a.below.Swap(true); a = a.parent {
	}
}

// work runs the queue to the end (or the first error) on Jobs workers.
func (p *puller) work() {
	q := p.q
	q.mu.Lock()
	empty := q.pending == 0
	q.mu.Unlock()
	if empty {
		return
	}
	var wg sync.WaitGroup
	for range p.o.Jobs {
		wg.Go(func() {
			for {
				t, ok := q.pop()
				if !ok {
					return
				}
				if err := p.entry(t); err != nil {
					p.fail(err)
				}
				q.done()
			}
		})
	}
	wg.Wait()
	p.closeDirs(p.root)
}

// closeDirs closes whatever directory an aborted run left open.
func (p *puller) closeDirs(d *dirNode) {
	d.mu.Lock()
	children := slices.Clone(d.children)
	d.mu.Unlock()
	for _, c := range children {
		p.closeDirs(c)
	}
	if d != p.root && d.fd >= 0 {
		unix.Close(d.fd)
		d.fd = -1
	}
}

// entryDone marks one entry of d finished; the last one closes d and
// finishes d in its parent.
func (p *puller) entryDone(d *dirNode) {
	for d != nil && d.pending.Add(-1) == 0 {
		if d.parent == nil {
			return // DEST's descriptor is Run's
		}
		unix.Close(d.fd)
		d.fd = -1
		d = d.parent
	}
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// local names a path of DEST in errors.
func (p *puller) local(rel string) string {
	if rel == "" {
		return p.o.Dest
	}
	return strings.TrimRight(p.o.Dest, "/") + "/" + rel
}

// rawMax is the largest entry (by its link's Tsize) fetched as a raw block
// rather than as a CAR: one block, and a raw answer is the cheapest a
// gateway gives.
const rawMax = 1<<20 + 4<<10

// entry makes one entry of the root right in DEST.
func (p *puller) entry(t task) error {
	if err := p.ctx.Err(); err != nil {
		return err
	}
	d := t.dir
	rel := join(d.rel, t.name)
	// A directory this run created holds only what this run wrote into
	// it, and an entry's name only once its task has run: a first copy
	// stats nothing.
	var ls metadata.Stat
	if !d.created {
		var err error
		if ls, err = lstatAt(d.fd, t.name); err != nil {
			return fmt.Errorf("DEST %s: %w", p.local(rel), err)
		}
	}
	// A directory whose entries were queued is done with its last entry.
	isDir := false
	defer func() {
		if !isDir {
			p.entryDone(d)
		}
	}()
	done, known, err := p.reuse(t, rel, ls)
	if done || err != nil {
		return err
	}
	isDir, err = p.fetchEntry(t, rel, ls, known)
	return err
}

// reuse makes the entry t right from what DEST holds, where it can; done
// is false if it must be fetched. known: DEST's entry still passes the
// quick check against its record.
func (p *puller) reuse(t task, rel string, ls metadata.Stat) (done, known bool, err error) {
	// Unchanged since it was written here: nothing to do. A record that
	// still matches but names another CID says the local entry is known to
	// differ, whatever its size and mtime.
	rec := p.st.lookup(rel)
	known = rec != nil && ls.Type != metadata.None && sameLocal(rec.Local, ls)
	if known && rec.Cid.Equals(t.cid) && ls.Type != metadata.Dir {
		if ls.Type != metadata.File || p.vouches(rec) {
			return true, known, p.keep(rec)
		}
		// Its content is right; its mode is checked against the root's
		// (file's quick check) as for a file no pull recorded.
		known = false
	}
	// The same file elsewhere in DEST (renamed, or a copy): copy it, with
	// the mode it has there if its record vouches for it.
	if ls.Type != metadata.Dir {
		if from, ok := p.st.pathOf(t.cid); ok && from != rel {
			if done, err := p.copyLocal(t, rel, from, ls.Type == metadata.None); done || err != nil {
				return true, known, err
			}
		}
	}

	// A file whose mode or mtime alone changed: its data is here.
	if known && ls.Type == metadata.File {
		if b := p.splice(t.dir, t, ls); b != nil {
			_, fsn, k, err := decodeEntry(b)
			if err == nil && k == kindFile {
				return true, known, p.file(t, rel, b, fsn, ls, known, nil)
			}
		}
	}
	return false, known, nil
}

// fetchEntry makes the entry t from its blocks, fetched or cached. isDir:
// it is a directory whose entries were queued.
func (p *puller) fetchEntry(t task, rel string, ls metadata.Stat, known bool) (isDir bool, err error) {
	cached := p.st.has(t.cid)
	// Read ahead with an enclosing subtree: everything below is there too.
	prefetched := p.pre.has(t.cid)
	if !cached && !prefetched && ls.Type == metadata.None {
		// Nothing local: a small subtree comes whole, in one round trip.
		prefetched = p.subtree(p.ctx, t.cid, t.size, 0)
	}
	b, err := p.block(p.ctx, t.cid)
	if err != nil {
		return false, fmt.Errorf("%s: %w", p.dagPath(rel), err)
	}
	nd, fsn, k, err := decodeEntry(b)
	if err != nil {
		return false, fmt.Errorf("%s: %w", p.dagPath(rel), err)
	}
	switch k {
	case kindDir:
		if err := p.dir(t, rel, b.RawData(), nd, fsn, ls, prefetched); err != nil {
			return false, err
		}
		return true, nil
	case kindSymlink:
		return false, p.symlink(t, rel, fsn, ls)
	}
	var stream Stream
	if !prefetched && ls.Type == metadata.None && nd != nil && len(nd.Links()) > 0 {
		if stream = p.entityStream(t.cid); stream != nil {
			defer stream.Close()
		}
	}
	return false, p.file(t, rel, b, fsn, ls, known, stream)
}

// entityStream is the rest of the big new file c in one stream (whose
// first block, the root, is already here), or nil.
func (p *puller) entityStream(c cid.Cid) Stream {
	s, err := p.src.CAR(p.ctx, c, "entity")
	if err != nil || s == nil {
		return nil
	}
	if first, err := s.Next(); err == nil && first.Cid().Equals(c) {
		return s
	}
	s.Close()
	return nil
}

// keep carries an unchanged entry's record into the new index.
func (p *puller) keep(rec *entry) error {
	rec.live.Store(true)
	switch rec.Local.Type {
	case metadata.File:
		p.files.Add(1)
		if err := p.addBytes(rec.Local.Size, rec.Path); err != nil {
			return err
		}
	case metadata.Symlink:
		p.symlinks.Add(1)
	}
	return nil
}

// dir makes the directory t in DEST and queues its entries.
func (p *puller) dir(t task, rel string, raw []byte, pn *mdag.ProtoNode, fsn *ft.FSNode, ls metadata.Stat, prefetched bool) error {
	d := t.dir
	if d.depth+1 > p.o.MaxDepth {
		return fmt.Errorf("%s: directories nested deeper than %d (--max-depth): %w", p.dagPath(rel), p.o.MaxDepth, errLimit)
	}
	if err := p.st.cacheBlock(t.cid, raw); err != nil {
		return err
	}
	// A big new HAMT directory is listed and written a group of entries at
	// a time.
	grouped := ls.Type != metadata.Dir && !prefetched && fsn.Type() == ft.THAMTShard
	n := &dirNode{parent: d, name: t.name, rel: rel, depth: d.depth + 1, cid: t.cid, meta: p.metaOf(fsn), mode: unixPerms(ls.Mode), before: ls}
	switch ls.Type {
	case metadata.Dir:
	case metadata.None:
		n.created = true
	default:
		if err := removeAt(d.fd, t.name); err != nil {
			return fmt.Errorf("DEST %s: replace with a directory: %w", p.local(rel), err)
		}
		n.created = true
	}
	if n.created {
		if err := unix.Mkdirat(d.fd, t.name, 0o700); err != nil {
			return fmt.Errorf("DEST %s: %w", p.local(rel), err)
		}
	}
	var err error
	if n.fd, err = fsat.OpenDir(d.fd, t.name); err != nil {
		return fmt.Errorf("DEST %s: %w", p.local(rel), err)
	}
	if !n.created && ls.Mode&0o700 != 0o700 {
		// Entries must be writable into it until finish sets its mode.
		if err := unix.Fchmod(n.fd, unixPerms(ls.Mode)|0o700); err != nil {
			unix.Close(n.fd)
			return fmt.Errorf("DEST %s: %w", p.local(rel), err)
		}
		n.touch()
	}
	p.dirs.Add(1)
	d.mu.Lock()
	d.children = append(d.children, n)
	d.mu.Unlock()
	if n.created {
		d.touch()
		n.touch()
	} else if (n.meta.hasMode && unixPerms(ls.Mode) != n.meta.mode) || (n.meta.hasMTime && ls.MTime.UnixNano() != n.meta.mtime) {
		n.touch()
	}
	return p.fill(n, t.cid, pn, fsn, grouped)
}

// symlink writes the symlink t: created under a temporary name with its
// mtime, then renamed over whatever was there. It is never followed.
func (p *puller) symlink(t task, rel string, fsn *ft.FSNode, ls metadata.Stat) error {
	d := t.dir
	target := fsn.Data()
	switch {
	case len(target) == 0:
		return fmt.Errorf("%s: symlink with an empty target", p.dagPath(rel))
	case bytes.IndexByte(target, 0) >= 0:
		return fmt.Errorf("%s: symlink target contains NUL", p.dagPath(rel))
	case len(target) >= 4096:
		return fmt.Errorf("%s: symlink target longer than 4095 bytes", p.dagPath(rel))
	}
	m := metaOf(fsn)
	p.symlinks.Add(1)
	same := false
	if ls.Type == metadata.Symlink {
		if now, err := fsat.Readlink(d.fd, t.name, ls.Size); err == nil && now == string(target) {
			same = true
		}
	}
	if same {
		if m.hasMTime && ls.MTime.UnixNano() != m.mtime {
			if err := fsat.SetMTimeAt(d.fd, t.name, m.mtime); err != nil {
				return fmt.Errorf("DEST %s: %w", p.local(rel), err)
			}
		}
	} else {
		tmp := tmpName()
		if err := unix.Symlinkat(string(target), d.fd, tmp); err != nil {
			return fmt.Errorf("DEST %s: %w", p.local(rel), err)
		}
		err := func() error {
			if m.hasMTime {
				if err := fsat.SetMTimeAt(d.fd, tmp, m.mtime); err != nil {
					return err
				}
			}
			if ls.Type == metadata.Dir {
				if err := removeAt(d.fd, t.name); err != nil {
					return err
				}
			}
			return unix.Renameat(d.fd, tmp, d.fd, t.name)
		}()
		if err != nil {
			unix.Unlinkat(d.fd, tmp, 0)
			return fmt.Errorf("DEST %s: %w", p.local(rel), err)
		}
		p.symlinksWritten.Add(1)
		d.touch()
	}
	now, err := lstatAt(d.fd, t.name)
	if err != nil {
		return fmt.Errorf("DEST %s: %w", p.local(rel), err)
	}
	return p.st.put(record{Path: rel, Cid: t.cid, Local: now})
}

// copyLocal copies the file t from the path from, where an earlier pull
// wrote the same CID and which still passes the quick check. done is false
// if it does not (the caller fetches instead). fresh: nothing is at rel.
func (p *puller) copyLocal(t task, rel, from string, fresh bool) (done bool, err error) {
	rec := p.st.lookup(from)
	if rec == nil || !rec.Cid.Equals(t.cid) || rec.Local.Type != metadata.File || !p.vouches(rec) {
		return false, nil
	}
	src, err := p.openFile(from)
	if err != nil {
		return false, nil
	}
	defer unix.Close(src)
	// The descriptor pins the inode: if another task replaces the path
	// meanwhile, this one still reads what the record describes.
	if now, err := fstat(src); err != nil || !sameLocal(rec.Local, now) {
		return false, nil
	}
	if err := p.addBytes(rec.Local.Size, rel); err != nil {
		return true, err
	}
	d := t.dir
	m := meta{hasMode: true, mode: unixPerms(rec.Local.Mode), hasMTime: true, mtime: rec.Local.MTime.UnixNano()}
	ls, err := p.writeTemp(d, t.name, rel, m, fresh, func(fd int) error {
		return copySparse(fd, src, rec.Local.Size)
	})
	if err != nil {
		return true, err
	}
	p.files.Add(1)
	p.filesWritten.Add(1)
	p.filesCopied.Add(1)
	p.bytesWritten.Add(rec.Local.Size)
	p.bytesReused.Add(rec.Local.Size)
	return true, p.st.put(record{Path: rel, Cid: t.cid, Local: ls})
}

// openFile opens the regular file at rel, one component at a time, never
// through a symlink.
func (p *puller) openFile(rel string) (int, error) {
	parts := strings.Split(rel, "/")
	fd := -1
	dir := func() int {
		if fd < 0 {
			return p.root.fd
		}
		return fd
	}
	for _, name := range parts[:len(parts)-1] {
		next, err := fsat.OpenDir(dir(), name)
		if fd >= 0 {
			unix.Close(fd)
		}
		if err != nil {
			return -1, err
		}
		fd = next
	}
	f, err := fsat.Open(dir(), parts[len(parts)-1], unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	if fd >= 0 {
		unix.Close(fd)
	}
	return f, err
}
