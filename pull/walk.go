package pull

import (
	"bytes"
	"errors"
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

// writeTemp writes the file name in d: a new file filled by fill, given
// its mode and mtime, then put in place. ls is its stat, taken before it
// is (linking or renaming changes nothing a file's record holds). fresh
// says name was absent when the entry was looked at: with the fast paths
// the file is made without a name (O_TMPFILE) and linked in once
// complete, one change to the directory instead of a create and a rename
// (on ext4, with several workers in one big directory, a third less
// time). Otherwise, or where that cannot be, it is written under a
// temporary name and renamed over name.
func (p *puller) writeTemp(d *dirNode, name, rel string, m meta, fresh bool, fill func(fd int) error) (metadata.Stat, error) {
	if fresh && p.fast && !p.noAnon.Load() {
		if fd := openAnon(d.fd); fd >= 0 {
			return p.writeAnon(d, name, rel, m, fd, fill)
		}
	}
	return p.writeNamed(d, name, rel, m, fill)
}

// writeAnon fills the file fd, which has no name yet, and links it in as
// name. If something took the name meanwhile, or the file cannot be
// linked (no /proc, no privilege: then no later file of the run is made
// without a name), it is copied under a temporary name, renamed over name.
func (p *puller) writeAnon(d *dirNode, name, rel string, m meta, fd int, fill func(fd int) error) (ls metadata.Stat, err error) {
	defer unix.Close(fd)
	if err := fill(fd); err != nil {
		return ls, err // it names its path, in the DAG or in DEST
	}
	err = p.setMeta(d, "", fd, m)
	if err == nil {
		ls, err = fstat(fd)
	}
	if err != nil {
		return ls, fmt.Errorf("DEST %s: %w", p.local(rel), err)
	}
	err = linkAnon(fd, d.fd, name)
	if err == nil {
		d.touch()
		return ls, nil
	}
	if !errors.Is(err, unix.EEXIST) {
		p.noAnon.Store(true)
	}
	return p.writeNamed(d, name, rel, m, func(dst int) error {
		if err := copySparse(dst, fd, ls.Size); err != nil {
			return fmt.Errorf("DEST %s: %w", p.local(rel), err)
		}
		return nil
	})
}

// setMeta gives the file fd (named tmp in d, if it has a name) mode and
// mtime; without the fast paths it is fsynced too (there is no syncfs at
// the end then).
func (p *puller) setMeta(d *dirNode, tmp string, fd int, m meta) error {
	mode := uint32(0o644)
	if m.hasMode {
		mode = m.mode
	}
	// fchmod rather than the create mode: the umask must not apply.
	err := unix.Fchmod(fd, mode)
	if err == nil && m.hasMTime {
		err = fsat.SetMTime(d.fd, tmp, fd, m.mtime)
	}
	if err == nil && !p.fast {
		err = unix.Fsync(fd)
	}
	return err
}

// writeNamed creates a temporary file in d, fills it with fill, gives it
// its mode and mtime, and renames it over name (removing a directory that
// was there). On any error the temporary file is removed.
func (p *puller) writeNamed(d *dirNode, name, rel string, m meta, fill func(fd int) error) (ls metadata.Stat, err error) {
	tmp := tmpName()
	fd, err := fsat.Open(d.fd, tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return ls, fmt.Errorf("DEST %s: %w", p.local(rel), err)
	}
	if err := fill(fd); err != nil {
		// fill's errors name their path (in the DAG or in DEST).
		unix.Close(fd)
		unix.Unlinkat(d.fd, tmp, 0)
		return ls, err
	}
	err = p.setMeta(d, tmp, fd, m)
	if err == nil {
		ls, err = fstat(fd)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(d.fd, tmp, d.fd, name)
		if errors.Is(err, unix.EISDIR) {
			// A directory is where the file goes: it is replaced.
			if err = removeAt(d.fd, name); err == nil {
				err = unix.Renameat(d.fd, tmp, d.fd, name)
			}
		}
	}
	d.touch()
	if err != nil {
		unix.Unlinkat(d.fd, tmp, 0)
		return ls, fmt.Errorf("DEST %s: %w", p.local(rel), err)
	}
	return ls, nil
}

// record notes in the index that name now holds c.
func (p *puller) record(d *dirNode, name, rel string, c cid.Cid) error {
	ls, err := lstatAt(d.fd, name)
	if err != nil {
		return fmt.Errorf("DEST %s: %w", p.local(rel), err)
	}
	return p.st.put(record{Path: rel, Cid: c, Local: ls})
}

// finish runs after every entry is written, depth first: it removes the
// local entries the root does not have, then gives each directory its
// mode and mtime, children before parents (each change inside a directory
// moves its mtime).
func (p *puller) finish(d *dirNode, fd int) error {
	for _, name := range d.deletes {
		removed, err := true, error(nil)
		if p.o.Delete == DeleteAll {
			err = removeAt(fd, name)
		} else {
			removed, err = p.removeWritten(fd, name, join(d.rel, name))
		}
		if err != nil {
			return fmt.Errorf("DEST %s: remove: %w", p.local(join(d.rel, name)), err)
		}
		if removed {
			p.deleted.Add(1)
		} else {
			d.foreign.Store(true)
		}
	}
	for _, name := range d.leftovers {
		if err := removeAt(fd, name); err != nil {
			return fmt.Errorf("DEST %s: remove leftover: %w", p.local(join(d.rel, name)), err)
		}
	}
	for _, c := range d.children {
		if !c.dirty.Load() && !c.below.Load() {
			continue
		}
		cfd, err := fsat.OpenDir(fd, c.name)
		if err != nil {
			return fmt.Errorf("DEST %s: %w", p.local(c.rel), err)
		}
		err = p.finish(c, cfd)
		unix.Close(cfd)
		if err != nil {
			return err
		}
	}
	ls, err := fstat(fd)
	if err != nil {
		return fmt.Errorf("DEST %s: %w", p.local(d.rel), err)
	}
	mode := d.mode
	switch {
	case d.meta.hasMode:
		mode = d.meta.mode
	case d.created:
		mode = 0o755
	}
	if unixPerms(ls.Mode) != mode {
		if err := unix.Fchmod(fd, mode); err != nil {
			return fmt.Errorf("DEST %s: %w", p.local(d.rel), err)
		}
	}
	if d.meta.hasMTime && ls.MTime.UnixNano() != d.meta.mtime {
		if err := fsat.SetMTime(fd, ".", fd, d.meta.mtime); err != nil {
			return fmt.Errorf("DEST %s: %w", p.local(d.rel), err)
		}
	}
	if !p.fast {
		// No syncfs at the end (durable): its entries, mode and mtime now.
		if err := unix.Fsync(fd); err != nil {
			return fmt.Errorf("DEST %s: %w", p.local(d.rel), err)
		}
	}
	return p.recordDir(d, fd)
}
