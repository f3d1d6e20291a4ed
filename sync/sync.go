// Package sync owns one run of ipfs-sync: it walks the source (diff),
// hands files to the chunker's workers, builds each directory once,
// bottom-up, as soon as its children are done, writes blocks through the
// store's batch writer, and moves the ref only after the blocks are durable.
// It never prints: warnings and results go to the caller.
package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/chunker"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/metadata"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

// ErrPartial means the run finished and recorded a root, but some entries
// were skipped (each reported through Options.Warn).
var ErrPartial = errors.New("some entries were skipped")

// Options configure one run.
type Options struct {
	Src     string
	Name    string // ref name; defaults to Src's absolute path
	Profile profile.Profile
	Filter  diff.Filter
	Workers int // file readers; defaults to GOMAXPROCS
	// Warn receives each skipped entry; it may be called from any goroutine.
	Warn func(path string, err error)
	// Open opens files for reading (tests count or fail opens through it).
	Open func(path string) (*os.File, error)
}

// Skipped is an entry left out of the root.
type Skipped struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Summary is the outcome of a run.
type Summary struct {
	Root          string    `json:"root"`
	Previous      *string   `json:"previous"`
	Name          string    `json:"name"`
	Files         int64     `json:"files"`
	Dirs          int64     `json:"dirs"`
	Symlinks      int64     `json:"symlinks"`
	Bytes         int64     `json:"bytes"`
	BytesRead     int64     `json:"bytes_read"`
	BlocksWritten int64     `json:"blocks_written"`
	BytesWritten  int64     `json:"bytes_written"`
	Skipped       []Skipped `json:"skipped"`
	Seconds       float64   `json:"seconds"`
}

// Run imports opts.Src into store and advances the ref. On error the ref
// is unchanged. ErrPartial comes with a complete Summary.
func Run(ctx context.Context, store *blockstore.Store, opts Options) (Summary, error) {
	start := time.Now()
	src, err := filepath.Abs(opts.Src)
	if err != nil {
		return Summary{}, err
	}
	if opts.Name == "" {
		opts.Name = src
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	ref, _, err := store.Ref(opts.Name)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Name: opts.Name, Skipped: []Skipped{}}
	if v, ok := ref.Current(); ok {
		sum.Previous = &v.Root
	}

	w := store.NewWriter()
	r := &run{opts: opts, w: w, imp: &chunker.Importer{Profile: opts.Profile, DAG: w, Open: opts.Open}}
	root, err := r.walkRoot(ctx, src)
	if err != nil {
		return Summary{}, err
	}
	if err := w.Flush(ctx); err != nil {
		return Summary{}, err
	}
	sum.Root = root.String()
	sum.Files, sum.Dirs, sum.Symlinks = r.files.Load(), r.dirs.Load(), r.symlinks.Load()
	sum.Bytes, sum.BytesRead = r.bytes.Load(), r.read.Load()
	sum.BlocksWritten, sum.BytesWritten = w.Blocks, w.Bytes
	r.mu.Lock()
	sum.Skipped = append(sum.Skipped, r.skipped...)
	r.mu.Unlock()
	sum.Seconds = time.Since(start).Seconds()

	js, _ := json.Marshal(sum)
	v := blockstore.Version{Root: sum.Root, Time: start.UTC(), Profile: opts.Profile.String(), Summary: js}
	if err := store.Advance(opts.Name, v); err != nil {
		return Summary{}, err
	}
	if len(sum.Skipped) > 0 {
		return sum, ErrPartial
	}
	return sum, nil
}

type run struct {
	opts Options
	w    *blockstore.Writer
	imp  *chunker.Importer

	files, dirs, symlinks, bytes, read atomic.Int64

	mu      gosync.Mutex
	skipped []Skipped
}

// result is a child of a directory, possibly not computed yet.
type result struct {
	done chan struct{}
	link Link
	skip bool
	err  error
}

func resolved(l Link) *result {
	r := &result{done: make(chan struct{}), link: l}
	close(r.done)
	return r
}

type fileJob struct {
	path, name string
	res        *result
}

func (r *run) walkRoot(ctx context.Context, src string) (cid.Cid, error) {
	st, err := metadata.Lstat(src)
	if err != nil {
		return cid.Undef, fmt.Errorf("source: %w", err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	jobs := make(chan fileJob)
	var wg gosync.WaitGroup
	for range r.opts.Workers {
		wg.Go(func() {
			for j := range jobs {
				r.importFile(ctx, cancel, j)
			}
		})
	}
	var top *result
	switch st.Type {
	case metadata.Dir:
		top = r.walkDir(ctx, cancel, jobs, src, "", st)
	case metadata.File:
		top = &result{done: make(chan struct{})}
		select {
		case jobs <- fileJob{path: src, name: filepath.Base(src), res: top}:
		case <-ctx.Done():
			top.err = context.Cause(ctx)
			close(top.done)
		}
	case metadata.Symlink:
		target, err := os.Readlink(src)
		if err != nil {
			return cid.Undef, fmt.Errorf("source: %w", err)
		}
		top = r.symlink(ctx, src, diff.Entry{Name: filepath.Base(src), Stat: st, Target: target})
	default:
		return cid.Undef, fmt.Errorf("source %s is a %s, not a file or directory", src, st.Type)
	}
	close(jobs)
	<-top.done
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return cid.Undef, err
	}
	if top.err != nil {
		return cid.Undef, top.err
	}
	if top.skip {
		return cid.Undef, fmt.Errorf("source %s was skipped", src)
	}
	return top.link.Cid, nil
}

func (r *run) importFile(ctx context.Context, fail context.CancelCauseFunc, j fileJob) {
	defer close(j.res.done)
	if ctx.Err() != nil {
		j.res.err = context.Cause(ctx)
		return
	}
	res, err := r.imp.File(ctx, j.path)
	r.read.Add(res.Read)
	if err != nil {
		if errors.Is(err, chunker.ErrNotRegular) {
			r.skip(j.path, err)
			j.res.skip = true
			return
		}
		j.res.err = err
		fail(err)
		return
	}
	r.files.Add(1)
	r.bytes.Add(res.Stat.Size)
	j.res.link = Link{Name: j.name, Cid: res.Cid, Tsize: res.Tsize}
}

func (r *run) skip(path string, err error) {
	r.mu.Lock()
	r.skipped = append(r.skipped, Skipped{Path: path, Reason: err.Error()})
	r.mu.Unlock()
	if r.opts.Warn != nil {
		r.opts.Warn(path, err)
	}
}

func (r *run) symlink(ctx context.Context, path string, e diff.Entry) *result {
	fields := metadata.Fields{Mode: r.opts.Profile.PreserveMode, MTime: r.opts.Profile.PreserveMTime}
	nd, err := symlinkNode(r.opts.Profile, e.Target, fields.MTimeOf(e.Stat))
	if err == nil {
		err = r.w.Add(ctx, nd)
	}
	if err != nil {
		res := &result{done: make(chan struct{}), err: fmt.Errorf("symlink %s: %w", path, err)}
		close(res.done)
		return res
	}
	r.symlinks.Add(1)
	size, _ := nd.Size()
	return resolved(Link{Name: e.Name, Cid: nd.Cid(), Tsize: size})
}

// walkDir lists one directory, queues its files, recurses into its
// subdirectories, and returns a result that completes once every child has
// and the directory's own node is built. The walk itself runs on one
// goroutine, blocked by the unbuffered job channel when all readers are
// busy, which is what bounds memory.
func (r *run) walkDir(ctx context.Context, fail context.CancelCauseFunc, jobs chan<- fileJob, path, name string, st metadata.Stat) *result {
	out := &result{done: make(chan struct{})}
	entries, err := diff.ReadDir(path, r.opts.Filter)
	if err != nil {
		out.err = fmt.Errorf("directory %s: %w", path, err)
		fail(out.err)
		close(out.done)
		return out
	}
	children := make([]*result, 0, len(entries))
	for _, e := range entries {
		if ctx.Err() != nil {
			break
		}
		p := filepath.Join(path, e.Name)
		switch e.Stat.Type {
		case metadata.File:
			res := &result{done: make(chan struct{})}
			select {
			case jobs <- fileJob{path: p, name: e.Name, res: res}:
			case <-ctx.Done():
				res.err = context.Cause(ctx)
				close(res.done)
			}
			children = append(children, res)
		case metadata.Dir:
			children = append(children, r.walkDir(ctx, fail, jobs, p, e.Name, e.Stat))
		case metadata.Symlink:
			children = append(children, r.symlink(ctx, p, e))
		default:
			r.skip(p, fmt.Errorf("%s: UnixFS cannot store a %s", p, e.Stat.Type))
		}
	}
	go func() {
		defer close(out.done)
		links := make([]Link, 0, len(children))
		for i, c := range children {
			<-c.done
			children[i] = nil
			if c.err != nil {
				out.err = c.err
				return
			}
			if !c.skip {
				links = append(links, c.link)
			}
		}
		if err := context.Cause(ctx); err != nil {
			out.err = err
			return
		}
		fields := metadata.Fields{Mode: r.opts.Profile.PreserveMode, MTime: r.opts.Profile.PreserveMTime}
		nd, _, err := dirNode(ctx, r.w, r.opts.Profile, fields.ModeOf(st), fields.MTimeOf(st), links)
		if err != nil {
			out.err = fmt.Errorf("directory %s: %w", path, err)
			fail(out.err)
			return
		}
		size, _ := nd.Size()
		r.dirs.Add(1)
		out.link = Link{Name: name, Cid: nd.Cid(), Tsize: size}
	}()
	return out
}
