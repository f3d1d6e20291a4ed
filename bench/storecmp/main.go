//go:build linux

// Command storecmp compares block stores for ipfs-sync's workload: it writes
// every block of a CAR (an 'ipfs-sync export' of an imported tree) into each
// store the way ipfs-sync's writer does (a Has check per block, batches of
// about 8 MiB, no sync during the run, one sync at the end), closes the
// store, reopens it and reads every block back by key.
//
// Stores:
//
//	pebble  go-ds-pebble with pebble's defaults (4 MiB memtables, Snappy,
//	        no bloom filters) under boxo's /blocks prefix: ipfs-sync's
//	        block store as of commit d3a3e88. Sync at the end (WAL fsync).
//	flatfs  go-ds-flatfs with kubo's default layout (next-to-last/2 shards,
//	        sync=false). flatfs's Sync is a no-op when sync is off, so the
//	        end-of-run sync is syncfs(2) on the store's file system.
//	flatfs-fsync  the same with sync=true (an fsync per file and directory).
//	pebble-tuned  go-ds-pebble tuned for large values: 64 MiB memtables,
//	        bloom filters (Has of a missing key reads no data block), no
//	        block compression (the data is incompressible) and value
//	        separation into blob files (values are not rewritten by every
//	        compaction). It shows whether pebble's numbers are a matter of
//	        configuration.
//
// The pebble stores' sync also gets a syncfs(2), so all are measured to the
// same durability. The stores are built here, not taken from the product,
// so the comparison stays fixed while the product changes. Output is a
// Markdown table (MB = 10^6 bytes).
//
// It builds on Linux only: each run ends in syncfs(2), as ipfs-sync's
// do there, and the figures are Linux's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	bstore "github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	ds "github.com/ipfs/go-datastore"
	flatfs "github.com/ipfs/go-ds-flatfs"
	pebbleds "github.com/ipfs/go-ds-pebble"
	carv2 "github.com/ipld/go-car/v2"
	mh "github.com/multiformats/go-multihash"
	"golang.org/x/sys/unix"
)

const batchBytes = 8 << 20 // as blockstore.Writer

type store interface {
	bs() bstore.Blockstore
	sync(ctx context.Context) error
	close() error
}

type flatfsStore struct {
	d *flatfs.Datastore
	b bstore.Blockstore
}

func (f flatfsStore) bs() bstore.Blockstore      { return f.b }
func (f flatfsStore) sync(context.Context) error { return nil } // flatfs.Sync is a no-op
func (f flatfsStore) close() error               { return f.d.Close() }
func openFlatfs(dir string, fsync bool) (store, error) {
	d, err := flatfs.CreateOrOpen(dir, flatfs.NextToLast(2), fsync)
	if err != nil {
		return nil, err
	}
	// kubo mounts flatfs at /blocks, so its keys carry no prefix.
	return flatfsStore{d: d, b: bstore.NewBlockstore(d, bstore.NoPrefix(), bstore.WriteThrough(true))}, nil
}

func open(kind, dir string) (store, error) {
	switch kind {
	case "pebble":
		return openPebble(dir, &pebble.Options{Logger: quiet{}})
	case "flatfs":
		return openFlatfs(dir, false)
	case "flatfs-fsync":
		return openFlatfs(dir, true)
	case "pebble-tuned":
		return openPebbleTuned(dir)
	}
	return nil, fmt.Errorf("unknown store %q (pebble, flatfs, flatfs-fsync, pebble-tuned)", kind)
}

type pebbleStore struct {
	d *pebbleds.Datastore
	b bstore.Blockstore
}

func (t pebbleStore) bs() bstore.Blockstore { return t.b }
func (t pebbleStore) sync(ctx context.Context) error {
	return t.d.Sync(ctx, ds.NewKey("/"))
}
func (t pebbleStore) close() error { return t.d.Close() }

func openPebbleTuned(dir string) (store, error) {
	o := &pebble.Options{
		Logger:                quiet{},
		MemTableSize:          64 << 20,
		L0CompactionThreshold: 8,
		FormatMajorVersion:    pebble.FormatNewest,
	}
	o.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	o.Experimental.EnableColumnarBlocks = func() bool { return true }
	o.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           1024,
			MaxBlobReferenceDepth: 10,
			RewriteMinimumAge:     time.Hour,
			TargetGarbageRatio:    0.5,
		}
	}
	return openPebble(dir, o)
}

func openPebble(dir string, o *pebble.Options) (store, error) {
	d, err := pebbleds.NewDatastore(dir, pebbleds.WithPebbleOpts(o))
	if err != nil {
		return nil, err
	}
	return pebbleStore{d: d, b: bstore.NewBlockstore(d, bstore.WriteThrough(true))}, nil
}

type quiet struct{}

func (quiet) Infof(string, ...any) {}
func (quiet) Errorf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+f+"\n", a...)
}
func (quiet) Fatalf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+f+"\n", a...)
	os.Exit(1)
}

type result struct {
	kind                        string
	blocks, bytes               int64
	write, sync, reopen, read   time.Duration
	readPar                     time.Duration
	writeCPU, readCPU           time.Duration // user+sys of this process
	diskBytes, apparent, nfiles int64
}

// better keeps, column by column, the lower time of r and o.
func (r *result) better(o result) {
	for _, p := range [][2]*time.Duration{
		{&r.write, &o.write}, {&r.sync, &o.sync}, {&r.reopen, &o.reopen}, {&r.read, &o.read},
		{&r.readPar, &o.readPar}, {&r.writeCPU, &o.writeCPU}, {&r.readCPU, &o.readCPU},
	} {
		*p[0] = min(*p[0], *p[1])
	}
}

func main() {
	car := flag.String("car", "", "CAR `FILE` to load (ipfs-sync export --car FILE ROOT)")
	dir := flag.String("dir", "", "scratch `DIR` for the stores (default: a temporary directory next to the CAR)")
	stores := flag.String("stores", "pebble,flatfs,pebble-tuned", "comma-separated stores: pebble, flatfs, flatfs-fsync, pebble-tuned")
	readers := flag.Int("readers", 2, "goroutines for the parallel read pass")
	rounds := flag.Int("rounds", 1, "rounds over all stores (interleaved); each column keeps its best")
	keep := flag.Bool("keep", false, "keep the stores after the run")
	flag.Parse()
	if *car == "" || flag.NArg() != 0 || *rounds < 1 || *readers < 1 {
		fmt.Fprintln(os.Stderr, "usage: storecmp -car FILE [-dir DIR] [-stores pebble,flatfs,...] [-readers N] [-rounds N] [-keep]")
		os.Exit(2)
	}
	ctx := context.Background()

	blks, err := loadCAR(*car)
	if err != nil {
		fatal(err)
	}
	var total int64
	for _, b := range blks {
		total += int64(len(b.RawData()))
	}
	fmt.Fprintf(os.Stderr, "storecmp: %d blocks, %.1f MB from %s\n", len(blks), float64(total)/1e6, *car)

	scratch := *dir
	if scratch == "" {
		scratch, err = os.MkdirTemp(filepath.Dir(*car), "storecmp.")
		if err != nil {
			fatal(err)
		}
		if !*keep {
			defer os.RemoveAll(scratch)
		}
	}
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		fatal(err)
	}
	kinds := strings.Split(*stores, ",")
	best := map[string]*result{}
	for round := 1; round <= *rounds; round++ {
		for _, kind := range kinds {
			// Every round gets a fresh directory and none is removed before
			// the end: ext4 skips recently freed inodes when it allocates,
			// which would slow the next flatfs round (find_inode_bit,
			// recently_deleted) for a reason that is not the store's.
			d := filepath.Join(scratch, fmt.Sprintf("%s.%d", kind, round))
			if err := os.RemoveAll(d); err != nil {
				fatal(err)
			}
			r, err := bench(ctx, kind, d, blks, *readers)
			if err != nil {
				fatal(fmt.Errorf("%s: %w", kind, err))
			}
			fmt.Fprintf(os.Stderr, "storecmp: round %d %s: write+sync %.2fs (cpu %.2fs), read %.2fs\n",
				round, kind, (r.write + r.sync).Seconds(), r.writeCPU.Seconds(), r.read.Seconds())
			if b, ok := best[kind]; ok {
				b.better(r)
			} else {
				best[kind] = &r
			}
			if !*keep {
				defer os.RemoveAll(d)
			}
		}
	}

	fmt.Printf("| store | blocks | data MB | write s | sync s | write+sync MB/s | write CPU s | reopen s | read s (1 thread) | read s (%d threads) | read MB/s (1 thread) | read CPU s | disk (du) MB | files |\n", *readers)
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, kind := range kinds {
		r := best[kind]
		ws := (r.write + r.sync).Seconds()
		fmt.Printf("| %s | %d | %.1f | %.2f | %.2f | %.0f | %.2f | %.2f | %.2f | %.2f | %.0f | %.2f | %.1f | %d |\n",
			r.kind, r.blocks, float64(r.bytes)/1e6, r.write.Seconds(), r.sync.Seconds(), float64(r.bytes)/ws/1e6,
			r.writeCPU.Seconds(), r.reopen.Seconds(), r.read.Seconds(), r.readPar.Seconds(),
			float64(r.bytes)/r.read.Seconds()/1e6, r.readCPU.Seconds(), float64(r.diskBytes)/1e6, r.nfiles)
	}
	if *rounds > 1 {
		fmt.Printf("\nBest of %d interleaved rounds, column by column.\n", *rounds)
	}
}

// cpu is this process's user+system time so far.
func cpu() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadCAR(path string) ([]blocks.Block, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br, err := carv2.NewBlockReader(f)
	if err != nil {
		return nil, fmt.Errorf("read CAR %s: %w", path, err)
	}
	var out []blocks.Block
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read CAR %s: %w", path, err)
		}
		if b.Cid().Prefix().MhType == mh.IDENTITY {
			continue
		}
		out = append(out, b)
	}
}

// bench writes blks into a new store of kind in dir, syncs, reopens the
// store and reads every block back, timing each part.
func bench(ctx context.Context, kind, dir string, blks []blocks.Block, readers int) (result, error) {
	r := result{kind: kind}
	s, err := open(kind, dir)
	if err != nil {
		return r, err
	}

	runtime.GC()
	c0 := cpu()
	t0 := time.Now()
	if err := put(ctx, s, blks, &r); err != nil {
		return r, err
	}
	r.write = time.Since(t0)

	t0 = time.Now()
	if err := s.sync(ctx); err != nil {
		return r, err
	}
	if err := syncfs(dir); err != nil {
		return r, err
	}
	r.sync = time.Since(t0)
	r.writeCPU = cpu() - c0

	t0 = time.Now()
	if err := s.close(); err != nil {
		return r, err
	}
	if s, err = open(kind, dir); err != nil {
		return r, err
	}
	r.reopen = time.Since(t0)

	c0 = cpu()
	t0 = time.Now()
	if err := getAll(ctx, s, blks); err != nil {
		s.close()
		return r, err
	}
	r.read = time.Since(t0)
	r.readCPU = cpu() - c0

	t0 = time.Now()
	if err := getParallel(ctx, s, blks, readers); err != nil {
		s.close()
		return r, err
	}
	r.readPar = time.Since(t0)

	if err := s.close(); err != nil {
		return r, err
	}
	r.diskBytes, r.apparent, r.nfiles, err = usage(dir)
	return r, err
}

// put writes blks as blockstore.Writer does: a Has for each, then batches
// of ~8 MiB of the missing ones; r counts what it wrote.
func put(ctx context.Context, s store, blks []blocks.Block, r *result) error {
	var batch []blocks.Block
	size := 0
	for _, b := range blks {
		has, err := s.bs().Has(ctx, b.Cid())
		if err != nil {
			return err
		}
		if has {
			continue
		}
		batch = append(batch, b)
		size += len(b.RawData())
		r.blocks++
		r.bytes += int64(len(b.RawData()))
		if size >= batchBytes {
			if err := s.bs().PutMany(ctx, batch); err != nil {
				return err
			}
			batch, size = batch[:0], 0
		}
	}
	if len(batch) > 0 {
		return s.bs().PutMany(ctx, batch)
	}
	return nil
}

// get reads b back by key and checks its size.
func get(ctx context.Context, s store, b blocks.Block) error {
	got, err := s.bs().Get(ctx, b.Cid())
	if err != nil {
		return fmt.Errorf("get %s: %w", b.Cid(), err)
	}
	if len(got.RawData()) != len(b.RawData()) {
		return fmt.Errorf("get %s: %d bytes, want %d", b.Cid(), len(got.RawData()), len(b.RawData()))
	}
	return nil
}

// getAll reads every block back, one after the other.
func getAll(ctx context.Context, s store, blks []blocks.Block) error {
	for _, b := range blks {
		if err := get(ctx, s, b); err != nil {
			return err
		}
	}
	return nil
}

// getParallel reads every block back on readers goroutines.
func getParallel(ctx context.Context, s store, blks []blocks.Block, readers int) error {
	ch := make(chan blocks.Block, 256)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range readers {
		wg.Go(func() {
			for b := range ch {
				if err := get(ctx, s, b); err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, b := range blks {
		ch <- b
	}
	close(ch)
	wg.Wait()
	return firstErr
}

// usage is du: allocated bytes, apparent bytes and regular files under dir.
func usage(dir string) (disk, apparent, files int64, err error) {
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			disk += st.Blocks * 512
		}
		if d.Type().IsRegular() {
			files++
			apparent += fi.Size()
		}
		return nil
	})
	return
}

func syncfs(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "storecmp:", err)
	os.Exit(1)
}
