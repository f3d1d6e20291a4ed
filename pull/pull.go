// Package pull owns materialising a root onto disk: `ipfs-sync pull ROOT
// DEST` makes the directory DEST exactly match the UnixFS DAG ROOT (files,
// directories, symlinks, mode and mtime), fetching blocks from trustless
// gateways or the local store, verifying each against its CID.
//
// It is incremental. The repository keeps, for each DEST (state.go), the
// last root pulled, an index (path → CID and the lstat pull left there)
// and the directory and file-structure blocks of that root; DEST itself
// holds nothing but ROOT. A run walks the new root from those
// cached blocks, so an unchanged directory costs no fetch; a file whose CID
// and lstat match its record is left alone (rsync's quick check); a
// renamed file is copied from its old path; a changed file reuses every
// chunk its old local version still holds (verified by hash) and fetches
// only the rest.
//
// It is safe against hostile roots: names are checked (no "", ".", "..",
// "/" or NUL, no duplicates), depth, entry count and bytes are bounded, and
// every write goes through directory file descriptors with O_NOFOLLOW, so
// nothing is ever written outside DEST. Each file is written as a new
// file, without a name (O_TMPFILE) or under a temporary one, and linked or
// renamed into place when complete, so DEST never holds half a file under
// its final name; an interrupted pull, run again, resumes from what it had
// finished.
package pull

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/internal/fastpath"
	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
)

// Defaults for the limits on what a root may ask DEST to hold. They are
// far above any real mirror (Debian's full archive is about 1.5 million
// entries, 15 levels deep) and below what would exhaust a machine: the
// index takes about 100 bytes of memory a path. The bytes a root may hold
// are bounded by DEST's free space (Options.MaxBytes).
const (
	DefaultMaxDepth   = 256
	DefaultMaxEntries = 10_000_000
)

// Options configure one pull.
type Options struct {
	Root   cid.Cid
	Dest   string
	Source Source
	// Repo is the repository where pull keeps what it knows of each DEST
	// (the directory need hold no blocks: a pull from gateways only uses
	// that). DEST may neither contain it nor lie inside it.
	Repo string
	// Delete says what is removed of what DEST has and Root lacks.
	Delete Deletion
	// PreserveSpecialBits applies the setuid, setgid and sticky bits ROOT
	// stores; without it they are left out, as tar does for a user other
	// than root.
	PreserveSpecialBits bool

	MaxDepth   int   // directory nesting below DEST
	MaxEntries int64 // entries (and HAMT shards) in Root
	// MaxBytes bounds the bytes of all files in Root; 0: what DEST's
	// filesystem has free plus what the files pull wrote there hold (an
	// update replaces those).
	MaxBytes int64
	Jobs     int // entries fetched at once

	// Progress, if set, is called a few times a second during the run.
	Progress func(Progress)

	// subtreeMax overrides the largest subtree read ahead whole (tests:
	// small trees exercise the paths big ones take).
	subtreeMax uint64
}

// Progress is a run's work so far.
type Progress struct {
	Entries      int64
	FilesWritten int64
	BytesWritten int64
	Fetched      Counters
}

// Result is what a pull did; it is also the --json summary.
type Result struct {
	Root     string  `json:"root"`
	Previous *string `json:"previous"`
	Dest     string  `json:"dest"`

	Files    int64 `json:"files"`
	Dirs     int64 `json:"dirs"`
	Symlinks int64 `json:"symlinks"`
	Bytes    int64 `json:"bytes"`

	FilesWritten    int64 `json:"files_written"`
	FilesCopied     int64 `json:"files_copied"` // of files_written: copied from another path of DEST
	SymlinksWritten int64 `json:"symlinks_written"`
	Deleted         int64 `json:"deleted"`
	// Kept: entries of DEST that ROOT lacks, left in place (no pull wrote
	// them, or one did and they were changed since; with --no-delete, all
	// of them); KeptPaths names the first few.
	Kept         int64    `json:"kept"`
	KeptPaths    []string `json:"kept_paths,omitempty"`
	BytesWritten int64    `json:"bytes_written"`
	BytesReused  int64    `json:"bytes_reused"` // of bytes_written: chunks found in the old local version

	BytesFetched  int64   `json:"bytes_fetched"`
	BlocksFetched int64   `json:"blocks_fetched"`
	WireBytes     int64   `json:"wire_bytes,omitempty"`
	Seconds       float64 `json:"seconds"`
}

// Deletion says which entries of DEST that ROOT lacks a pull removes.
type Deletion uint8

const (
	// DeleteWritten (the default) removes what earlier pulls wrote into
	// DEST, as they left it: a file or symlink changed since, and anything
	// no pull wrote, is kept and reported. A first pull into a directory
	// that is not empty is refused: DEST may be the wrong directory.
	DeleteWritten Deletion = iota
	// DeleteAll (--delete) removes everything ROOT lacks, as rsync
	// --delete does: DEST becomes exactly ROOT.
	DeleteAll
	// DeleteNone (--no-delete) removes nothing.
	DeleteNone
)

// maxKeptPaths is how many kept entries a result names.
const maxKeptPaths = 10

// puller is one run.
type puller struct {
	o      Options
	src    Source
	st     *state
	ctx    context.Context
	cancel context.CancelFunc
	err    onceErr
	q      *queue
	root   *dirNode
	// fetches bounds the blocks being fetched one by one at any moment
	// (each holds up to MaxBlockSize): the memory bound of a run.
	fetches    chan struct{}
	pre        *prefetch
	zero       *zeroLeaves
	subtreeMax uint64
	// recheck: with PreserveSpecialBits, no file's record vouches for its
	// mode (some were written without the bits the root stores).
	recheck bool
	// freeLimit: o.MaxBytes is DEST's free space (and what pull's files
	// there hold), not a number given.
	freeLimit bool
	// fast: the Linux fast paths (fastpath.On): one syncfs of DEST at the
	// end. Without, each file and directory is fsynced as it is finished.
	fast bool
	// noAnon: a file made without a name could not be linked in; every
	// later one gets a temporary name first.
	noAnon atomic.Bool

	entries, bytes                             atomic.Int64
	files, dirs, symlinks                      atomic.Int64
	filesWritten, filesCopied, symlinksWritten atomic.Int64
	deleted, bytesWritten, bytesReused         atomic.Int64

	keptMu    sync.Mutex
	kept      int64
	keptPaths []string
}

// Run pulls opts.Root into opts.Dest.
func Run(ctx context.Context, opts Options) (Result, error) {
	start := time.Now()
	opts = withDefaults(opts)
	res := Result{Root: opts.Root.String(), Dest: opts.Dest}
	if opts.Repo == "" {
		return res, errors.New("no repository to keep the state of DEST in")
	}
	destfd, err := lockDest(opts)
	if err != nil {
		return res, err
	}
	defer unix.Close(destfd)
	id, err := identify(destfd, opts.Dest)
	if err != nil {
		return res, fmt.Errorf("DEST %s: %w", opts.Dest, err)
	}
	st, err := openState(opts.Repo, id, destfd)
	if err != nil {
		return res, fmt.Errorf("DEST %s: %w", opts.Dest, err)
	}
	defer st.close()
	freeLimit := opts.MaxBytes <= 0
	if freeLimit {
		free, err := freeSpace(destfd)
		if err != nil {
			return res, fmt.Errorf("DEST %s: %w", opts.Dest, err)
		}
		opts.MaxBytes = free + st.held()
	}
	recheck, err := beginState(st, destfd, opts)
	if err != nil {
		return res, err
	}
	if st.prev.Root != "" {
		prev := st.prev.Root
		res.Previous = &prev
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := &puller{o: opts, src: opts.Source, st: st, ctx: ctx, cancel: cancel, q: newQueue(), recheck: recheck, freeLimit: freeLimit,
		fetches: make(chan struct{}, 4*opts.Jobs), pre: &prefetch{blocks: map[cid.Cid][]byte{}}, zero: newZeroLeaves(), subtreeMax: subtreeMax, fast: fastpath.On()}
	if opts.subtreeMax > 0 {
		p.subtreeMax = opts.subtreeMax
	}

	stopProgress := p.progress()
	err = p.run(destfd)
	stopProgress()
	p.summary(&res)
	res.Seconds = time.Since(start).Seconds()
	if err != nil {
		st.indexW.flush()
		st.cacheW.flush()
		return res, err
	}
	return res, nil
}

// withDefaults fills in the limits and Jobs opts leaves at zero.
func withDefaults(opts Options) Options {
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.Jobs <= 0 {
		opts.Jobs = max(8, 2*runtime.GOMAXPROCS(0))
	}
	return opts
}

// lockDest creates and opens DEST, apart from the repository, and locks it.
func lockDest(opts Options) (destfd int, err error) {
	if err := checkApart(opts.Dest, opts.Repo); err != nil {
		return -1, err
	}
	if err := os.MkdirAll(opts.Dest, 0o755); err != nil {
		return -1, fmt.Errorf("create DEST: %w", err)
	}
	// DEST itself is the caller's to name (it may be a symlink to where the
	// mirror lives); everything below it is reached through descriptors.
	destfd, err = fsat.Open(unix.AT_FDCWD, opts.Dest, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, fmt.Errorf("open DEST %s: %w", opts.Dest, err)
	}
	// One pull at a time into a directory, whichever repository keeps its
	// state: the lock is on DEST itself (flock writes nothing there).
	if err := unix.Flock(destfd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(destfd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return -1, fmt.Errorf("DEST %s: %w: another pull is writing into it", opts.Dest, blockstore.ErrLocked)
		}
		return -1, fmt.Errorf("lock DEST %s: %w", opts.Dest, err)
	}
	return destfd, nil
}

// beginState readies DEST's state st for this run before anything is
// written into DEST: a first pull into a DEST that must be empty, the rule
// for special bits saved, an earlier version's state in DEST removed.
// recheck: no file's record vouches for its mode.
func beginState(st *state, destfd int, opts Options) (recheck bool, err error) {
	if st.fresh && opts.Delete == DeleteWritten {
		if err := checkEmpty(destfd, opts.Dest); err != nil {
			return false, err
		}
	}
	if st.fresh {
		// No record yet: every one will be written under this run's rule.
		st.prev.SpecialBits = opts.PreserveSpecialBits
	}
	// A record vouches for a file's mode only under the rule for special
	// bits it was written under (vouches). Runs that change rules mark the
	// records mixed until one finishes.
	changed := st.prev.SpecialBits != opts.PreserveSpecialBits && !st.prev.Recheck
	if changed {
		st.prev.Recheck = true
	}
	recheck = opts.PreserveSpecialBits && (st.prev.Recheck || !st.prev.SpecialBits)
	if st.fresh || st.legacy || changed {
		// Before anything is written into DEST, the state says that pull
		// writes into it, and under which rule.
		if err := st.save(); err != nil {
			return false, err
		}
	}
	if st.legacy {
		if err := removeAt(destfd, legacyStateDir); err != nil {
			return false, fmt.Errorf("DEST %s: remove the state an earlier version kept there: %w", opts.Dest, err)
		}
	}
	return recheck, nil
}

func (p *puller) run(destfd int) error {
	rootBlock, err := p.block(p.ctx, p.o.Root)
	if err != nil {
		return fmt.Errorf("%s: %w", p.o.Root, err)
	}
	nd, fsn, kind, err := decodeEntry(rootBlock)
	if err != nil {
		return fmt.Errorf("%s: %w", p.o.Root, err)
	}
	if kind != kindDir {
		return fmt.Errorf("%s is a %s, not a directory: pull writes directories", p.o.Root, kind)
	}
	ls, err := fstat(destfd)
	if err != nil {
		return fmt.Errorf("DEST %s: %w", p.o.Dest, err)
	}
	p.root = &dirNode{fd: destfd, cid: p.o.Root, meta: p.metaOf(fsn), mode: unixPerms(ls.Mode), before: ls}
	p.dirs.Add(1)
	if err := p.st.cacheBlock(p.o.Root, rootBlock.RawData()); err != nil {
		return err
	}
	// The workers start on the root's first entries while the rest of it
	// is listed; the queue is held open until the listing is done.
	p.q.hold()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.work()
	}()
	if err := p.fill(p.root, p.o.Root, nd, fsn, false); err != nil {
		p.fail(err)
	}
	p.q.done()
	<-done
	if err := p.err.get(); err != nil {
		return err
	}
	if err := p.ctx.Err(); err != nil {
		return err
	}
	if err := p.finish(p.root, destfd); err != nil {
		return err
	}
	if err := p.st.settle(); err != nil {
		return err
	}
	// The state says "DEST holds ROOT" only once all of it (the state's
	// logs included) is on disk: one syncfs, or, without the fast paths,
	// each file and directory was fsynced as it was finished.
	if p.fast {
		if err := fsat.SyncFS(destfd); err != nil {
			return fmt.Errorf("sync DEST: %w", err)
		}
	}
	p.st.prev.SpecialBits, p.st.prev.Recheck = p.o.PreserveSpecialBits, false
	return p.st.record(p.o.Root)
}

// fail records the run's first error and stops every worker.
func (p *puller) fail(err error) {
	if p.err.set(err) {
		p.cancel()
		p.q.abort()
	}
}

// progress calls Options.Progress every 200 ms until the returned stop.
func (p *puller) progress() (stop func()) {
	if p.o.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.o.Progress(Progress{Entries: p.entries.Load(), FilesWritten: p.filesWritten.Load(),
					BytesWritten: p.bytesWritten.Load(), Fetched: p.src.Counters()})
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (p *puller) summary(r *Result) {
	r.Files, r.Dirs, r.Symlinks, r.Bytes = p.files.Load(), p.dirs.Load(), p.symlinks.Load(), p.bytes.Load()
	r.FilesWritten, r.FilesCopied, r.SymlinksWritten = p.filesWritten.Load(), p.filesCopied.Load(), p.symlinksWritten.Load()
	r.Deleted, r.BytesWritten, r.BytesReused = p.deleted.Load(), p.bytesWritten.Load(), p.bytesReused.Load()
	p.keptMu.Lock()
	r.Kept, r.KeptPaths = p.kept, slices.Sorted(slices.Values(p.keptPaths))
	p.keptMu.Unlock()
	c := p.src.Counters()
	r.BytesFetched, r.BlocksFetched, r.WireBytes = c.Bytes, c.Blocks, c.Wire
}

// keepForeign notes an entry of DEST that ROOT lacks, left in place.
func (p *puller) keepForeign(rel string) {
	p.keptMu.Lock()
	defer p.keptMu.Unlock()
	p.kept++
	if len(p.keptPaths) < maxKeptPaths {
		p.keptPaths = append(p.keptPaths, rel)
	}
}

// errLimit marks a root that asks for more than the limits allow.
var errLimit = errors.New("over the limit")

func (p *puller) addEntries(n int64, at string) error {
	if v := p.entries.Add(n); v > p.o.MaxEntries {
		return fmt.Errorf("%s: more than %d entries (--max-entries): %w", p.dagPath(at), p.o.MaxEntries, errLimit)
	}
	return nil
}

func (p *puller) addBytes(n int64, at string) error {
	if n < 0 {
		return fmt.Errorf("%s: negative size", p.dagPath(at))
	}
	if v := p.bytes.Add(n); v > p.o.MaxBytes || v < 0 {
		if p.freeLimit {
			return fmt.Errorf("%s: files total more than %d bytes, what DEST's filesystem has free plus what pull's files there hold (--max-bytes): %w", p.dagPath(at), p.o.MaxBytes, errLimit)
		}
		return fmt.Errorf("%s: files total more than %d bytes (--max-bytes): %w", p.dagPath(at), p.o.MaxBytes, errLimit)
	}
	return nil
}

// dagPath names a path of the root in errors: ROOT/a/b.
func (p *puller) dagPath(rel string) string {
	if rel == "" {
		return p.o.Root.String()
	}
	return p.o.Root.String() + "/" + rel
}
