package pull

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// A directory's entries are queued as soon as they are known, not once the
// whole listing is in: a big HAMT directory arrives a level (or a shard
// group) at a time, and its changed entries are being fetched while the
// rest is still listed and checked. What DEST has that the root lacks is
// found at the end, from the names seen.

// lister feeds one directory's entries to the queue.
type lister struct {
	p    *puller
	d    *dirNode
	seen map[string]struct{}
	// quiet: the directory's record says pull left it as it is now (same
	// CID, mode, mtime and ctime): nothing was added to or removed from it
	// since, so it need not be read for names the root lacks.
	quiet bool
}

// begin starts listing d: d stays open (pending > 0) until end.
func (p *puller) begin(d *dirNode) *lister {
	d.pending.Store(1) // the listing's own hold, released by end
	return &lister{p: p, d: d, seen: map[string]struct{}{}}
}

// offer checks a batch of d's entries and queues them. Every name is
// checked before any of the batch is queued: one path component that can
// be created, not twice in the directory. An entry whose record still
// matches lstat and names its CID is settled here, without a task (on an
// update nearly all of them); one with no record or another CID is queued
// at once, before the others are lstat'ed.
func (l *lister) offer(links []link) error {
	p, d := l.p, l.d
	if err := p.addEntries(int64(len(links)), d.rel); err != nil {
		return err
	}
	for _, e := range links {
		if err := checkName(e.Name); err != nil {
			return fmt.Errorf("%s: entry %q: %w", p.dagPath(d.rel), e.Name, err)
		}
		if _, dup := l.seen[e.Name]; dup {
			return fmt.Errorf("%s: entry %q appears twice", p.dagPath(d.rel), e.Name)
		}
		l.seen[e.Name] = struct{}{}
	}
	type candidate struct {
		link
		rec *entry
	}
	var now []task
	var maybe []candidate
	for _, e := range links {
		if rec := p.st.lookup(join(d.rel, e.Name)); rec != nil && rec.Cid.Equals(e.Cid) && ((rec.Local.Type == metadata.File && p.vouches(rec)) || rec.Local.Type == metadata.Symlink) {
			maybe = append(maybe, candidate{e, rec})
		} else {
			// In a directory this run created everything is new: there,
			// the order that keeps read-ahead in budget is the walk's.
			now = append(now, task{dir: d, name: e.Name, cid: e.Cid, size: e.Tsize, changed: !d.created})
		}
	}
	l.queue(now)
	// The rest is lstat'ed, a big batch in parts at once.
	const part = 2048
	parts := make([][]task, (len(maybe)+part-1)/part)
	var wg sync.WaitGroup
	var first onceErr
	for k := range parts {
		wg.Go(func() {
			for _, e := range maybe[k*part : min(len(maybe), (k+1)*part)] {
				if ls, err := lstatAt(d.fd, e.Name); err == nil && sameLocal(e.rec.Local, ls) {
					if err := p.keep(e.rec); err != nil {
						first.set(err)
						return
					}
					continue
				}
				parts[k] = append(parts[k], task{dir: d, name: e.Name, cid: e.Cid, size: e.Tsize})
			}
		})
		if len(parts) > 1 && k%4 == 3 {
			wg.Wait() // at most four at once
		}
	}
	wg.Wait()
	if err := first.get(); err != nil {
		return err
	}
	l.queue(slices.Concat(parts...))
	return nil
}

func (l *lister) queue(ts []task) {
	if len(ts) == 0 {
		return
	}
	l.d.pending.Add(int64(len(ts)))
	l.p.q.push(ts)
}

// end compares what DEST has in d with the names seen: what the root lacks
// is removed at the end of the run (what Options.Delete says; the rest is
// reported kept), and so are leftovers of an interrupted run (never at
// once: a temporary name here may be one of this run's, being written).
// Then d's listing hold is released.
func (l *lister) end() error {
	p, d := l.p, l.d
	defer p.entryDone(d)
	if l.quiet {
		return nil
	}
	names, err := fsat.ReadNames(d.fd)
	if err != nil {
		return fmt.Errorf("DEST %s: %w", p.local(d.rel), err)
	}
	for _, n := range names {
		if _, ok := l.seen[n]; ok {
			continue
		}
		switch {
		case strings.HasPrefix(n, tmpPrefix):
			d.mu.Lock()
			d.leftovers = append(d.leftovers, n)
			d.mu.Unlock()
			d.touch()
		case p.o.Delete == DeleteAll || (p.o.Delete == DeleteWritten && p.st.lookup(join(d.rel, n)) != nil):
			d.mu.Lock()
			d.deletes = append(d.deletes, n)
			d.mu.Unlock()
			d.touch()
		default:
			p.keepForeign(join(d.rel, n))
			d.foreign.Store(true)
		}
	}
	if !d.dirty.Load() {
		// Nothing to change here so far: record the directory as it is
		// (if something is written into it later, finish records it again).
		return p.recordDir(d, d.fd)
	}
	return nil
}

// recordDir notes in the index that d, open as fd, is as pull leaves it.
func (p *puller) recordDir(d *dirNode, fd int) error {
	ls, err := fstat(fd)
	if err != nil {
		return fmt.Errorf("DEST %s: %w", p.local(d.rel), err)
	}
	if d.foreign.Load() {
		// It holds entries kept but not ROOT's: a ctime no directory has
		// makes the next run read it again, and report them again.
		ls.CTime = -1
	}
	return p.st.put(record{Path: d.rel, Cid: d.cid, Local: ls})
}

// fill lists the directory node nd (CID c) into d. A basic directory is one
// batch. A HAMT is walked a level at a time, each level a batch; one that
// DEST does not have yet and that was not read ahead whole (it is bigger
// than a subtree CAR may be) is fetched a child shard's subtree at a
// time, so the memory read ahead stays bounded however big it is.
func (p *puller) fill(d *dirNode, c cid.Cid, nd *mdag.ProtoNode, fsn *ft.FSNode, grouped bool) error {
	l := p.begin(d)
	if rec := p.st.lookup(d.rel); rec != nil && rec.Local.Type == metadata.Dir && rec.Cid.Equals(c) && sameLocal(rec.Local, d.before) {
		l.quiet = true
		rec.live.Store(true)
	}
	err := p.fillWith(l, c, nd, fsn, grouped)
	if err != nil {
		p.entryDone(d) // release the hold; the run stops anyway
		return err
	}
	return l.end()
}

func (p *puller) fillWith(l *lister, c cid.Cid, nd *mdag.ProtoNode, fsn *ft.FSNode, grouped bool) error {
	rel := l.d.rel
	herr := func(err error) error {
		if errors.Is(err, errLimit) || p.ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("%s: HAMT: %w", p.dagPath(rel), err)
	}
	if fsn.Type() != ft.THAMTShard {
		links := make([]link, len(nd.Links()))
		for i, x := range nd.Links() {
			links[i] = link{Name: x.Name, Cid: x.Cid, Tsize: x.Size}
		}
		return l.offer(links)
	}
	// Errors from offer name their path already.
	var oerr error
	offer := func(ls []link) error {
		oerr = l.offer(ls)
		return oerr
	}
	walk := func(c cid.Cid, nd *mdag.ProtoNode) error {
		if err := p.hamtLinks(p.ctx, c, nd, rel, offer); err != nil {
			if oerr != nil {
				return oerr
			}
			return herr(err)
		}
		return nil
	}
	if !grouped {
		return walk(c, nd)
	}
	pad, err := shardPad(nd)
	if err != nil {
		return herr(err)
	}
	var direct []link
	for _, x := range nd.Links() {
		switch {
		case len(x.Name) > pad:
			direct = append(direct, link{Name: x.Name[pad:], Cid: x.Cid, Tsize: x.Size})
		case len(x.Name) == pad:
			p.subtree(p.ctx, x.Cid, x.Size, time.Second)
			if err := p.addEntries(1, rel); err != nil {
				return err
			}
			child, err := p.shard(p.ctx, x.Cid)
			if err != nil {
				return herr(err)
			}
			if err := walk(x.Cid, child); err != nil {
				return err
			}
		default:
			return herr(fmt.Errorf("invalid link name %q", x.Name))
		}
	}
	return l.offer(direct)
}
