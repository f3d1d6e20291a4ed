// Package sync owns one run of ipfs-sync: it walks the source and the
// previous root side by side (diff), reuses every unchanged file and
// directory by its CID, hands changed files to the chunker's workers,
// builds each changed directory once, bottom-up, as soon as its children
// are done, and moves the ref only after every block is durable. It never
// prints: itemised changes, warnings and the summary go to the caller.
package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	bstore "github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/chunker"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/export"
	"github.com/ipfs-sync/ipfs-sync/metadata"
	"github.com/ipfs-sync/ipfs-sync/profile"
	"github.com/ipfs-sync/ipfs-sync/remote"
)

// ErrPartial means the run finished and recorded a root, but some entries
// were skipped or kept from the previous root (each reported through
// Options.Warn).
var ErrPartial = errors.New("some entries were skipped")

// RacyWindow is how close to the previous run's start a file's mtime may be
// before the quick check stops trusting it: a file rewritten within one
// timestamp tick of being read keeps its mtime. Two seconds covers the
// coarsest common filesystems (FAT; ext3 and NFS at one second).
const RacyWindow = 2 * time.Second

// SkewWindow is how far past this run's start a file's mtime must lie to
// be trusted although it is newer than the previous run: no write since
// that run read the file can have stamped it, since a write stamps the
// filesystem's clock, which is not this far ahead of ours. Such mtimes are
// set on purpose (utime, a package unpacked from a host whose clock runs
// ahead, a generator's publish dates); treating them as racy would re-read
// those files on every run until the clock catches up with them.
const SkewWindow = time.Hour

// Options configure one run.
type Options struct {
	Src     string
	Name    string // ref name; defaults to Src's absolute path
	Profile profile.Profile
	Filter  diff.Filter
	Workers int // file readers; defaults to GOMAXPROCS

	Full     bool   // ignore the previous root (the result is the same)
	Base     string // diff against this root instead of the ref's current one
	Checksum bool   // compare content (xxh3) of files that pass the quick check
	DryRun   bool   // walk and diff only: nothing is written, the ref stays
	CAR      string // also write the blocks a holder of the ref's previous root lacks to this CARv1 file
	// NoCopy stores file leaves as references to the source's bytes
	// (nocopy.go), except for files Copy's patterns match.
	NoCopy bool
	Copy   []diff.Rule
	// Reflink, with NoCopy, clones file leaves into the store where the
	// file system can (blockstore.Writer.Reflinks), referencing them only
	// where it cannot.
	Reflink bool
	// Target, when set, is where the root goes, read from when this
	// repository lacks the previous root (a runner that keeps nothing
	// between runs): Base, or without a ref's current root the root
	// Target.Previous finds there, is diffed against as read from the
	// target (see remotePrevious).
	Target *remote.Target

	// Progress, if set, is updated as the run goes; read it at any time.
	Progress *Progress
	// Item receives itemised changes in walk order, from one goroutine.
	Item func(Change)
	// Warn receives each skipped entry; it may be called from any goroutine.
	Warn func(path string, err error)
	// Open opens files for reading (tests count or fail opens through it);
	// chunker.OpenAt when nil.
	Open func(chunker.Source) (chunker.File, error)
}

// Change is one itemised difference from the previous root.
type Change = diff.Change

// Progress counts a run's work while it happens.
type Progress struct {
	Entries   atomic.Int64 // entries walked
	Queued    atomic.Int64 // bytes of files queued to be read
	Read      atomic.Int64 // bytes read so far
	FilesDone atomic.Int64 // files read and chunked
	Blocks    atomic.Int64 // new blocks written
	WalkDone  atomic.Bool
}

// Skipped is an entry left out of the root, or kept as it was.
type Skipped struct {
	Path string `json:"path"`
	// PathBase64 is Path's bytes when they are not UTF-8 (JSON would
	// replace them with U+FFFD).
	PathBase64 []byte `json:"path_base64,omitempty"`
	Reason     string `json:"reason"`
}

// Counts tallies entries by what happened to them.
type Counts struct {
	Added     int64 `json:"added"`
	Removed   int64 `json:"removed"`
	Modified  int64 `json:"modified"`
	Metadata  int64 `json:"metadata_only"`
	Unchanged int64 `json:"unchanged"`
}

// Summary is the outcome of a run.
type Summary struct {
	Root          string    `json:"root"` // "" in a dry run
	Previous      *string   `json:"previous"`
	PreviousFrom  string    `json:"previous_from,omitempty"` // the target Previous was read from, not this repository
	Name          string    `json:"name"`
	NameBase64    []byte    `json:"name_base64,omitempty"` // Name's bytes when they are not UTF-8
	DryRun        bool      `json:"dry_run,omitempty"`
	Files         int64     `json:"files"`
	Dirs          int64     `json:"dirs"`
	Symlinks      int64     `json:"symlinks"`
	Bytes         int64     `json:"bytes"`
	FileChanges   Counts    `json:"file_changes"`
	DirChanges    Counts    `json:"dir_changes"`
	BytesRead     int64     `json:"bytes_read"`
	BytesNew      int64     `json:"bytes_new"`
	BlocksWritten int64     `json:"blocks_written"`
	Skipped       []Skipped `json:"skipped"`
	Seconds       float64   `json:"seconds"`
}

// Run syncs opts.Src into store and advances the ref. On error the ref
// is unchanged. ErrPartial comes with a complete Summary.
func Run(ctx context.Context, store *blockstore.Store, opts Options) (Summary, error) {
	start := time.Now()
	src, opts, err := withDefaults(store, opts)
	if err != nil {
		return Summary{}, err
	}
	ref, _, err := store.Ref(opts.Name)
	if err != nil {
		return Summary{}, err
	}
	r := newRun(store, opts, start)
	defer r.index.Close()
	r.srcMoved = srcMoved(ref, src)
	prev, err := r.previous(ctx, ref)
	if err != nil {
		return Summary{}, err
	}
	root, err := r.walkRoot(ctx, src, prev)
	if err != nil {
		return Summary{}, err
	}
	if !opts.DryRun {
		// What the heap grew to while files were read is garbage now:
		// handed back to the system while the flush waits on the disk,
		// on a core the walk has left idle, where a process's exit would
		// free it after everything else (~5 of a first import's last ms).
		go debug.FreeOSMemory()
		if err := r.index.Flush(ctx); err != nil {
			return Summary{}, err
		}
		if err := r.w.Flush(ctx); err != nil {
			return Summary{}, err
		}
	}
	sum := r.summary(prev, root)
	if r.fromTarget != nil {
		sum.PreviousFrom = r.fromTarget.Source().String()
	}
	if !opts.DryRun {
		if err := r.record(ctx, ref, root, sum); err != nil {
			return Summary{}, err
		}
	}
	if len(sum.Skipped) > 0 {
		return sum, ErrPartial
	}
	return sum, nil
}

// withDefaults is opts with every default filled in, and src, the
// absolute path of opts.Src. The filter gains the source's ignore file
// and leaves the repository out.
func withDefaults(store *blockstore.Store, opts Options) (string, Options, error) {
	src, err := filepath.Abs(opts.Src)
	if err != nil {
		return "", opts, err
	}
	if opts.Name == "" {
		opts.Name = src
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	if opts.Filter, err = opts.Filter.WithIgnoreFile(src); err != nil {
		return "", opts, fmt.Errorf("source: %w", err)
	}
	if opts.Filter, err = leaveOutRepository(src, store.Dir(), opts.Filter, opts.Warn); err != nil {
		return "", opts, err
	}
	return src, opts, nil
}

// newRun sets up a run: one writer for every block it makes, counted
// into opts.Progress.
func newRun(store *blockstore.Store, opts Options, start time.Time) *run {
	w := store.NewWriter(opts.DryRun)
	progress := opts.Progress
	w.OnNew = func() { progress.Blocks.Add(1) }
	var leaves ipld.DAGService = w
	if opts.NoCopy && opts.Reflink {
		leaves = w.Reflinks(opts.Warn)
	}
	return &run{
		opts:  opts,
		store: store,
		w:     w,
		imp: &chunker.Importer{Profile: opts.Profile, DAG: leaves, Open: opts.Open,
			OnRead: func(n int) { progress.Read.Add(int64(n)) }, OnSize: func(n int64) { progress.Queued.Add(n) }},
		probe: &chunker.Importer{Profile: opts.Profile, DAG: store.NewWriter(true)},
		tree:  diff.Tree{DAG: w},
		index: store.Index(opts.Name),
		meta:  metadata.Fields{Mode: opts.Profile.PreserveMode, MTime: opts.Profile.PreserveMTime},
		start: start,
	}
}

// record writes the --car file, if asked for, and then moves the ref to
// root, with sum beside it.
func (r *run) record(ctx context.Context, ref blockstore.Ref, root cid.Cid, sum Summary) error {
	if r.opts.CAR != "" {
		// Relative to the ref's previous root, not to this run's writes;
		// without a ref, to the root read from the target, which holds it.
		var old cid.Cid
		var bs bstore.Blockstore = r.store.Blockstore()
		if cur, ok := ref.Current(); ok {
			var err error
			if old, err = cid.Decode(cur.Root); err != nil {
				return fmt.Errorf("ref %q names a bad root %q: %w", ref.Name, cur.Root, err)
			}
		} else if sum.PreviousFrom != "" {
			old = cid.MustParse(*sum.Previous)
			// Nothing more is kept: the run's blocks are flushed.
			bs = remote.New(bs, r.opts.Target.Source, nil)
		}
		if _, err := export.DeltaFile(ctx, bs, old, root, r.opts.CAR); err != nil {
			return err
		}
	}
	js, _ := json.Marshal(sum)
	v := blockstore.Version{Root: sum.Root, Time: r.start.UTC(), Profile: r.opts.Profile.String(), Summary: js, Source: r.nocopySource()}
	return r.store.Advance(r.opts.Name, v)
}

// leaveOutRepository adds a first rule to f that excludes the repository
// at repo when it lies inside src, with a warning: imported, it would be
// a change on every run (each run writes to it). A repository that is src
// itself is an error.
func leaveOutRepository(src, repo string, f diff.Filter, warn func(string, error)) (diff.Filter, error) {
	s, err := filepath.EvalSymlinks(src)
	if err != nil {
		return f, nil // the walk says what is wrong with src
	}
	d, err := filepath.Abs(repo)
	if err == nil {
		d, err = filepath.EvalSymlinks(d)
	}
	if err != nil {
		return f, nil
	}
	rel, err := filepath.Rel(s, d)
	switch {
	case err != nil || rel == ".." || strings.HasPrefix(rel, "../"):
		return f, nil
	case rel == ".":
		return f, fmt.Errorf("source %s is the repository itself", src)
	}
	rel = filepath.ToSlash(rel)
	rule, err := diff.ParseRule("/"+globEscaper.Replace(rel)+"/", false)
	if err != nil {
		return f, fmt.Errorf("leave the repository out of %s: %w", src, err)
	}
	if f.Include(rel, filepath.Base(rel), true) && warn != nil {
		warn("", fmt.Errorf("the repository %s is inside the source; it is left out", repo))
	}
	f.Rules = append([]diff.Rule{rule}, f.Rules...)
	return f, nil
}

// globEscaper makes a path match itself as a filter pattern.
var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)

type run struct {
	opts      Options
	store     *blockstore.Store
	w         *blockstore.Writer
	imp       *chunker.Importer
	probe     *chunker.Importer // builds nodes to compare, stores nothing (sameDataAs)
	tree      diff.Tree
	index     *blockstore.Index
	meta      metadata.Fields
	start     time.Time
	prevStart time.Time
	reuse     bool    // the previous root may be reused
	fallback  cid.Cid // a previous root with these settings, for unreadable directories
	trusted   bool    // the previous root is the ref's current one in an undamaged store
	srcMoved  bool    // the ref's references were made under another SRC (nocopy.go)
	// fromTarget reads the previous root from Options.Target: nil when it
	// is in the store.
	fromTarget *remote.Blockstore

	files, dirs, symlinks, bytes, read atomic.Int64
	fileCounts, dirCounts              counts

	items   chan *item    // the top walker's items, in walk order
	slots   chan struct{} // walkers running besides the top one
	walkers gosync.WaitGroup
	linger  chan struct{} // directories open for their queued files only (dirFD)

	mu      gosync.Mutex
	skipped []Skipped
}
