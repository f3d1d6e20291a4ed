package sync

import (
	"context"
	"sort"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// summary is the outcome of the finished walk from prev to root.
func (r *run) summary(prev, root cid.Cid) Summary {
	sum := Summary{Name: r.opts.Name, DryRun: r.opts.DryRun, Skipped: []Skipped{}}
	if !utf8.ValidString(r.opts.Name) {
		sum.NameBase64 = []byte(r.opts.Name)
	}
	if prev.Defined() {
		s := prev.String()
		sum.Previous = &s
	}
	if root.Defined() && !r.opts.DryRun {
		// A dry run records no root, so it has none to report, even when
		// nothing changed: one rule, whatever the walk found.
		sum.Root = root.String()
	}
	sum.Files, sum.Dirs, sum.Symlinks = r.files.Load(), r.dirs.Load(), r.symlinks.Load()
	sum.Bytes, sum.BytesRead = r.bytes.Load(), r.read.Load()
	sum.FileChanges, sum.DirChanges = r.fileCounts.load(), r.dirCounts.load()
	sum.BlocksWritten, sum.BytesNew = r.w.Blocks, r.w.Bytes
	r.mu.Lock()
	sum.Skipped = append(sum.Skipped, r.skipped...)
	r.mu.Unlock()
	// Walkers run side by side: report in path order, the same every run.
	sort.SliceStable(sum.Skipped, func(i, j int) bool { return sum.Skipped[i].Path < sum.Skipped[j].Path })
	sum.Seconds = time.Since(r.start).Seconds()
	return sum
}

type counts struct{ added, removed, modified, meta, unchanged atomic.Int64 }

func (c *counts) load() Counts {
	return Counts{c.added.Load(), c.removed.Load(), c.modified.Load(), c.meta.Load(), c.unchanged.Load()}
}

// item is an itemised change whose outcome may depend on reading a file,
// or (sub set) the place of a subtree walked on another goroutine, whose
// items come through sub.
type item struct {
	done   chan struct{}
	change Change
	show   bool
	sub    chan *item
}

// print hands the items of ch, and of the subtrees placed in it, to the
// Item callback in order, each once its outcome is known.
func (r *run) print(ch chan *item) {
	for it := range ch {
		if it.sub != nil {
			r.print(it.sub)
			continue
		}
		<-it.done
		if it.show {
			r.opts.Item(it.change)
		}
	}
}

// startItems starts handing itemised changes to the Item callback, if
// there is one: the WaitGroup is done once r.items is closed and printed.
func (r *run) startItems() *gosync.WaitGroup {
	var printed gosync.WaitGroup
	if r.opts.Item != nil {
		r.items = make(chan *item, 1024)
		printed.Go(func() { r.print(r.items) })
	}
	return &printed
}

func (r *run) warn(path string, err error) {
	r.mu.Lock()
	if path != "" {
		sk := Skipped{Path: path, Reason: err.Error()}
		if !utf8.ValidString(path) {
			sk.PathBase64 = []byte(path)
		}
		r.skipped = append(r.skipped, sk)
	}
	r.mu.Unlock()
	if r.opts.Warn != nil {
		r.opts.Warn(path, err)
	}
}

// itemise queues a change for the Item callback in walk order. A nil
// return means nobody listens.
func (w *walker) itemise(ctx context.Context, c Change, known bool) *item {
	if w.items == nil || (w.quietUnder != "" && strings.HasPrefix(c.Path, w.quietUnder) && c.Path != w.quietUnder) {
		return nil
	}
	it := &item{done: make(chan struct{}), change: c, show: true}
	if known {
		close(it.done)
	}
	select {
	case w.items <- it:
	case <-ctx.Done():
	}
	return it
}

func (it *item) resolve(show bool, why metadata.Why) {
	if it == nil {
		return
	}
	it.show = show
	if why != 0 {
		it.change.Why = why
	}
	close(it.done)
}
