package sync

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/ipfs-sync/ipfs-sync/diff"
)

// result is a child of a directory, possibly not computed yet.
type result struct {
	link diff.Link
	skip bool
	err  error
	// join is the one waiting for this result, its directory (see
	// whenAll) or a wait, or fired once the result is complete. Why not a
	// channel closed when done: one for each file of an import was a
	// tenth of what the walk allocated, and all but a few results are
	// only ever joined.
	join atomic.Pointer[dirJoin]
}

// complete marks r done, its fields final, and tells the one waiting for
// it.
func (r *result) complete() {
	if j := r.join.Swap(fired); j != nil {
		j.childDone()
	}
}

// wait returns once r is complete. Only a result no directory joins is
// waited for: a result has one joiner.
func (r *result) wait() {
	if r.join.Load() == fired {
		return
	}
	done := make(chan struct{})
	j := &dirJoin{then: func() { close(done) }}
	j.left.Store(1)
	if r.join.CompareAndSwap(nil, j) {
		<-done
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
		if c.join.Load() == fired || c.join.Swap(j) == fired {
			// Complete already: it stays marked so.
			c.join.Store(fired)
			j.left.Add(-1)
		}
	}
	j.childDone()
}

func newResult() *result { return &result{} }

// completed is a result known at once: resolved, failed or skipped.
func completed(r *result) *result {
	r.join.Store(fired)
	return r
}

func resolved(l diff.Link) *result { return completed(&result{link: l}) }

func failed(err error) *result { return completed(&result{err: err}) }

func skippedResult() *result { return completed(&result{skip: true}) }

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

// childLinks returns the links of children, each complete (whenAll): a
// skipped child has none. It lets each result go once read.
func childLinks(ctx context.Context, children []*result) ([]diff.Link, error) {
	links := make([]diff.Link, 0, len(children))
	for i, c := range children {
		children[i] = nil // whenAll saw each complete
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
