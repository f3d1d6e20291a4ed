package sync

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/ipfs-sync/ipfs-sync/diff"
)

// result is a child of a directory, possibly not computed yet.
type result struct {
	done chan struct{}
	link diff.Link
	skip bool
	err  error
	// join is the directory waiting for this result (see whenAll), or
	// fired once the result is complete.
	join atomic.Pointer[dirJoin]
}

// complete marks r done, its fields final, and tells the directory
// waiting for it.
func (r *result) complete() {
	close(r.done)
	if j := r.join.Swap(fired); j != nil {
		j.childDone()
	}
}

// dirJoin runs a directory's finish once its last child is complete, on the
// goroutine that completes it: a goroutine per directory would be woken by
// every child (docs/benchmarks.md#decisions).
type dirJoin struct {
	left atomic.Int64
	then func()
}

var fired = &dirJoin{}

func (j *dirJoin) childDone() {
	if j.left.Add(-1) == 0 {
		j.then()
	}
}

// whenAll calls then once every result in rs is complete: here if they
// are, else on the goroutine that completes the last one.
func whenAll(rs []*result, then func()) {
	j := &dirJoin{then: then}
	j.left.Store(int64(len(rs)) + 1)
	for _, c := range rs {
		// Known at once (resolved, failed, skippedResult): never completed.
		if c.done == closedDone || c.join.Swap(j) == fired {
			j.left.Add(-1)
		}
	}
	j.childDone()
}

func newResult() *result { return &result{done: make(chan struct{})} }

// closedDone is the done channel of every result known at once: most
// entries of a re-sync are, and would otherwise cost a channel each.
var closedDone = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func resolved(l diff.Link) *result { return &result{link: l, done: closedDone} }

func failed(err error) *result { return &result{err: err, done: closedDone} }

func skippedResult() *result { return &result{skip: true, done: closedDone} }

// finishDir completes out, wd's result, once every child has: with the
// first child's error, or the run's, else with wd's link.
func (w *walker) finishDir(ctx context.Context, wd *dirWalk, children []*result, out *result) {
	defer out.complete()
	links, err := childLinks(ctx, children)
	if err != nil {
		out.err = err
		return
	}
	out.link, out.err = w.dirLink(ctx, wd, links)
}

// childLinks waits for each child in turn and returns their links (a
// skipped child has none), letting each result go once read.
func childLinks(ctx context.Context, children []*result) ([]diff.Link, error) {
	links := make([]diff.Link, 0, len(children))
	for i, c := range children {
		<-c.done
		children[i] = nil
		if c.err != nil {
			return nil, c.err
		}
		if !c.skip {
			links = append(links, c.link)
		}
	}
	return links, context.Cause(ctx)
}

// dirLink is wd's link over its children's links: the previous node where
// nothing it stores changed, else a node built and stored (in a dry run,
// only counted). An error building it fails the run.
func (w *walker) dirLink(ctx context.Context, wd *dirWalk, links []diff.Link) (diff.Link, error) {
	r, pd, prev := w.run, wd.pd, wd.prev
	r.dirs.Add(1)
	if pd != nil && sameLinks(links, pd.Entries) && !r.storesAny(r.dirWhy(wd.st, pd.Known)) {
		r.dirCounts.unchanged.Add(1)
		return diff.Link{Name: wd.name, Cid: prev.Cid, Tsize: prev.Tsize}, nil
	}
	if r.opts.DryRun {
		// Children read in a dry run have no CIDs: count, don't build.
		if pd == nil {
			r.dirCounts.added.Add(1)
		} else {
			r.dirCounts.modified.Add(1)
		}
		return diff.Link{Name: wd.name}, nil
	}
	var ps *prevShard
	if pd != nil && pd.Sharded {
		ps = &prevShard{cid: prev.Cid, entries: pd.Entries}
	}
	db, err := dirNode(ctx, r.w, r.opts.Profile, r.meta.ModeOf(wd.st), r.meta.MTimeOf(wd.st), links, ps)
	if err != nil {
		err = fmt.Errorf("directory %s: %w", wd.path, err)
		w.fail(err)
		return diff.Link{}, err
	}
	if db.raw != nil {
		// A HAMT's shards are copied when the next run reads them.
		r.putDir(ctx, wd.relPath, [][]byte{db.raw})
	}
	switch {
	case pd == nil:
		r.dirCounts.added.Add(1)
	case db.cid.Equals(prev.Cid):
		r.dirCounts.unchanged.Add(1)
	default:
		r.dirCounts.modified.Add(1)
	}
	return diff.Link{Name: wd.name, Cid: db.cid, Tsize: db.tsize}, nil
}

func sameLinks(a, b []diff.Link) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !a[i].Cid.Equals(b[i].Cid) {
			return false
		}
	}
	return true
}
