package blockstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	bstore "github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	flatfs "github.com/ipfs/go-ds-flatfs"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fastpath"
	"github.com/ipfs-sync/ipfs-sync/internal/fastpath/fastpathtest"
	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
)

// testBlocks makes n distinct raw blocks of up to ~4 KiB, the first one
// empty; odd ones use blake2b, so two hash functions share the store.
func testBlocks(n int, tag string) []blocks.Block {
	var bs []blocks.Block
	for i := range n {
		data := bytes.Repeat([]byte(fmt.Sprintf("%s-%d;", tag, i)), 1+i*7%400)
		if i == 0 {
			data = nil
		}
		code := uint64(mh.SHA2_256)
		if i%2 == 1 {
			code = mh.BLAKE2B_MIN + 31
		}
		h, err := mh.Sum(data, code, -1)
		if err != nil {
			panic(err)
		}
		b, _ := blocks.NewBlockWithCid(data, cid.NewCidV1(cid.Raw, h))
		bs = append(bs, b)
	}
	return bs
}

func openTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.packs.w.limit = 16 << 10 // many packs from few blocks
	return s
}

// putAll writes bs through a Writer from two goroutines, as a sync's
// workers do.
func putAll(t *testing.T, s *Store, bs []blocks.Block) {
	t.Helper()
	w := s.NewWriter(false)
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i, b := range bs {
				if i%2 == g || i%5 == 0 { // some blocks put twice
					if err := w.PutBlock(t.Context(), b.Cid(), b.RawData()); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
}

func checkAll(t *testing.T, bs bstore.Blockstore, want []blocks.Block, present bool) {
	t.Helper()
	ctx := context.Background()
	for i, b := range want {
		got, err := bs.Get(ctx, b.Cid())
		if !present {
			if !ipld.IsNotFound(err) {
				t.Fatalf("block %d: want not found, got %v", i, err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
			t.Fatalf("block %d (%d bytes): %v", i, len(b.RawData()), err)
		}
		if n, err := bs.GetSize(ctx, b.Cid()); err != nil || n != len(b.RawData()) {
			t.Fatalf("block %d: size %d, %v", i, n, err)
		}
		// A block is found by its multihash whatever the codec.
		if has, err := bs.Has(ctx, cid.NewCidV1(cid.DagProtobuf, b.Cid().Hash())); err != nil || !has {
			t.Fatalf("block %d: Has by multihash: %v %v", i, has, err)
		}
	}
}

func countKeys(t *testing.T, bs bstore.Blockstore) int {
	t.Helper()
	ch, err := bs.AllKeysChan(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range ch {
		n++
	}
	return n
}

// crash drops the store as a killed process would: nothing flushed.
func crash(s *Store) {
	s.packs.set.close()
	s.ds.Close()
	s.lock.Close()
}

// Blocks written from two goroutines across many packs read back, before
// and after a reopen, in the writer and in a reader that opened before
// they were written; every index merge keeps them.
func TestPackStoreRoundTrip(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		dir := t.TempDir()
		s := openTest(t, dir)
		r, err := OpenReader(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		bs := testBlocks(600, "a")
		putAll(t, s, bs[:300])
		checkAll(t, s.Blockstore(), bs[:300], true) // before flush: pending and sealed packs
		checkAll(t, s.Blockstore(), bs[300:], false)
		for i := 300; i < 600; i += 30 { // many flushes: indexes merge
			putAll(t, s, bs[i:i+30])
			if err := s.Sync(t.Context()); err != nil {
				t.Fatal(err)
			}
			if idx, _ := filepath.Glob(filepath.Join(dir, packsDir, "*.idx")); len(idx) > maxIdx {
				t.Fatalf("%d indexes after a flush", len(idx))
			}
		}
		checkAll(t, s.Blockstore(), bs, true)
		checkAll(t, r.Blockstore(), bs, true)
		if n := countKeys(t, s.Blockstore()); n != len(bs) {
			t.Fatalf("AllKeysChan: %d keys, want %d", n, len(bs))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openTest(t, dir)
		defer s.Close()
		checkAll(t, s.Blockstore(), bs, true)
		if n := countKeys(t, r.Blockstore()); n != len(bs) {
			t.Fatalf("reader's AllKeysChan: %d keys, want %d", n, len(bs))
		}
	})
}

// What a run killed before its flush wrote is gone after the next open:
// its packs and unnamed indexes removed, the blocks of earlier runs whole.
func TestPackStoreCrash(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		dir := t.TempDir()
		s := openTest(t, dir)
		old, lost := testBlocks(100, "old"), testBlocks(200, "lost")
		putAll(t, s, old)
		if err := s.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		putAll(t, s, lost)
		if news, _ := filepath.Glob(filepath.Join(dir, packsDir, "*.idx.new")); len(news) == 0 {
			t.Fatal("no sealed, unnamed index to leave behind")
		}
		crash(s)

		s = openTest(t, dir)
		defer s.Close()
		checkAll(t, s.Blockstore(), old, true)
		checkAll(t, s.Blockstore(), lost[1:], false) // lost[0] is old[0], the empty block
		if news, _ := filepath.Glob(filepath.Join(dir, packsDir, "*.new")); len(news) != 0 {
			t.Fatalf("left: %v", news)
		}
		packs, _ := filepath.Glob(filepath.Join(dir, packsDir, "*.pack"))
		s.packs.set.mu.RLock()
		used := s.packs.set.packNamesLocked()
		s.packs.set.mu.RUnlock()
		if len(packs) != len(used) {
			t.Fatalf("%d packs on disk, %d named by indexes", len(packs), len(used))
		}
		putAll(t, s, lost) // the next run writes them again
		if err := s.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		checkAll(t, s.Blockstore(), lost, true)
	})
}

// gc keeps what roots reach (and empty blocks), drops the rest from the
// indexes, rewrites packs that became mostly garbage and deletes them; a
// reader open across the gc still reads every kept block, whether or not
// it had the old pack open.
func TestPackStoreGC(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		ctx := context.Background()
		dir := t.TempDir()
		s := openTest(t, dir)
		defer s.Close()
		bs := testBlocks(400, "gc")
		putAll(t, s, bs)
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		r, err := OpenReader(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		checkAll(t, r.Blockstore(), bs[:1], true) // opens one pack
		var keep, gone []blocks.Block
		var roots []cid.Cid
		for i, b := range bs {
			if i%3 == 0 || len(b.RawData()) == 0 {
				keep = append(keep, b)
				roots = append(roots, b.Cid())
			} else {
				gone = append(gone, b)
			}
		}
		res, err := s.GC(ctx, roots)
		if err != nil {
			t.Fatal(err)
		}
		if res.Kept != int64(len(keep)) || res.Removed != int64(len(gone)) {
			t.Fatalf("gc kept %d removed %d, want %d and %d", res.Kept, res.Removed, len(keep), len(gone))
		}
		var live, stored int64
		for _, b := range keep {
			live += int64(recordHead + len(b.Cid().Hash()) + len(b.RawData()))
		}
		packs, _ := filepath.Glob(filepath.Join(dir, packsDir, "*.pack"))
		for _, p := range packs {
			st, _ := os.Stat(p)
			stored += st.Size()
		}
		if stored > live*100/repackBelow {
			t.Errorf("packs hold %d bytes for %d of live records", stored, live)
		}
		checkAll(t, s.Blockstore(), keep, true)
		checkAll(t, s.Blockstore(), gone, false)
		checkAll(t, r.Blockstore(), keep, true)
		if n := countKeys(t, s.Blockstore()); n != len(keep) {
			t.Fatalf("%d blocks listed after gc, want %d", n, len(keep))
		}
		// A second gc with the same roots has nothing to do.
		if res, err := s.GC(ctx, roots); err != nil || res.Removed != 0 || res.Kept != int64(len(keep)) {
			t.Fatalf("second gc: %+v %v", res, err)
		}
	})
}

// DeleteBlock removes one block from every index; fsck --repair uses it.
func TestPackStoreDelete(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	defer s.Close()
	bs := testBlocks(50, "del")
	putAll(t, s, bs)
	if err := s.Blockstore().DeleteBlock(ctx, bs[7].Cid()); err != nil {
		t.Fatal(err)
	}
	checkAll(t, s.Blockstore(), bs[7:8], false)
	checkAll(t, s.Blockstore(), bs[8:], true)
}

// A damaged index stops readers and writers with a message naming it,
// rather than hiding blocks or letting a writer delete packs it names.
func TestPackStoreDamagedIndex(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	putAll(t, s, testBlocks(40, "dmg"))
	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	idx, _ := filepath.Glob(filepath.Join(dir, packsDir, "*.idx"))
	if len(idx) == 0 {
		t.Fatal("no index")
	}
	f, err := os.OpenFile(idx[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff}, 40)
	f.Close()
	packs, _ := filepath.Glob(filepath.Join(dir, packsDir, "*.pack"))
	for _, open := range []func(string) (*Store, error){OpenReader, Open} {
		if _, err := open(dir); err == nil || !strings.Contains(err.Error(), filepath.Base(idx[0])) || !errors.Is(err, errBadIdx) {
			t.Fatalf("want an error naming %s: %v", idx[0], err)
		}
	}
	if after, _ := filepath.Glob(filepath.Join(dir, packsDir, "*.pack")); len(after) != len(packs) {
		t.Fatalf("packs deleted: %d of %d left", len(after), len(packs))
	}
}

// A repository of an earlier version (blocks in flatfs) is converted when
// a writer opens it; a reader or dry run asks for that first.
func TestMigrateFlatfs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fds, err := flatfs.CreateOrOpen(filepath.Join(dir, flatfsDir), flatfs.NextToLast(2), false)
	if err != nil {
		t.Fatal(err)
	}
	bs := testBlocks(120, "flat")
	if err := bstore.NewBlockstore(fds, bstore.NoPrefix()).PutMany(ctx, bs); err != nil {
		t.Fatal(err)
	}
	fds.Close()
	for _, open := range []func(string) (*Store, error){OpenReader, OpenDryRun} {
		if _, err := open(dir); err == nil || !strings.Contains(err.Error(), "earlier version") {
			t.Fatalf("want a conversion message: %v", err)
		}
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkAll(t, s.Blockstore(), bs, true)
	if _, err := os.Stat(filepath.Join(dir, flatfsDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("flatfs tree left after conversion: %v", err)
	}
}

// Small packs, one per run, are gathered by gc once there are more than
// maxSmallPacks of them, all blocks kept.
func TestPackStoreGCGathersSmallPacks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	defer s.Close()
	s.packs.w.limit = 1 << 20
	var all []blocks.Block
	var roots []cid.Cid
	for run := range maxSmallPacks + 4 {
		bs := testBlocks(10, fmt.Sprint("run", run))[1:]
		putAll(t, s, bs)
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		all = append(all, bs...)
		for _, b := range bs {
			roots = append(roots, b.Cid())
		}
	}
	if packs, _ := filepath.Glob(filepath.Join(dir, packsDir, "*.pack")); len(packs) != maxSmallPacks+4 {
		t.Fatalf("%d packs before gc, want one per run", len(packs))
	}
	if res, err := s.GC(ctx, roots); err != nil || res.Removed != 0 {
		t.Fatalf("gc: %+v %v", res, err)
	}
	if packs, _ := filepath.Glob(filepath.Join(dir, packsDir, "*.pack")); len(packs) != 1 {
		t.Fatalf("%d packs after gc, want 1", len(packs))
	}
	checkAll(t, s.Blockstore(), all, true)
}

// Blocks of chunk size fill many stage buffers across several packs:
// every block reads back, before the flush (from the stage or the file)
// and after a reopen, and each sealed pack is cut to its records (no
// space allocated ahead is left). With the fast paths on, every full
// stage went through AIO, where this system allows it in the test's
// directory, but at most aioAfter-1 of each pack, written with pwrite
// before the run's AIO context was made (and maybe still in flight when
// the pack took it); off, every one was written with pwrite.
func TestPackStoreLargeWrites(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		dir := t.TempDir()
		aio, why := aioHere(dir)
		s := openTest(t, dir)
		s.packs.w.limit = 24 << 20
		var bs []blocks.Block
		var records int64
		for i := range 160 {
			data := bytes.Repeat([]byte{byte(i), byte(i >> 8), 7}, (200<<10+i*977)/3)
			h, _ := mh.Sum(data, mh.SHA2_256, -1)
			b, _ := blocks.NewBlockWithCid(data, cid.NewCidV1(cid.Raw, h))
			bs = append(bs, b)
			records += int64(recordHead + len(h) + len(data))
		}
		putAll(t, s, bs)
		checkAll(t, s.Blockstore(), bs, true)
		if err := s.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		packs, _ := filepath.Glob(filepath.Join(dir, packsDir, "*.pack"))
		byAIO, byPwrite := s.packs.w.stagesAIO.Load(), s.packs.w.stagesPwrite.Load()
		full := records/stageSize - 2 // at least: each pack's last stage is written partly full
		early := int64(len(packs)) * (aioAfter - 1)
		if aio && (byAIO == 0 || byAIO+byPwrite < full || byPwrite > early) || !aio && (byAIO != 0 || byPwrite < full) {
			t.Fatalf("full stages: %d through AIO, %d with pwrite; want at least %d, %s", byAIO, byPwrite, full, map[bool]string{true: fmt.Sprintf("at most %d with pwrite", early), false: "all with pwrite"}[aio])
		}
		var size int64
		for _, p := range packs {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			size += fi.Size()
		}
		if len(packs) < 2 || size != records {
			t.Fatalf("%d packs of %d bytes, want several holding the %d bytes of records", len(packs), size, records)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openTest(t, dir)
		defer s.Close()
		checkAll(t, s.Blockstore(), bs, true)
		if os.Getenv(fastpath.Env) == "" && !aio {
			t.Skipf("the pwrite path passed, but not the AIO one: %s", why)
		}
	})
}

// bothModes runs fn as two subtests: with the Linux fast paths on (where
// this system has them) and off (IPFS_SYNC_NO_FASTPATH, the portable
// writes every system has).
func bothModes(t *testing.T, fn func(t *testing.T)) {
	fastpathtest.BothModes(t, func(t *testing.T, _ bool) { fn(t) })
}

// aioHere reports whether a pack writer opened on dir now writes its full
// stages through AIO: the fast paths on, the kernel allowing io_setup, and
// dir's file system taking an O_DIRECT write. If not, it says why.
func aioHere(dir string) (bool, string) {
	if !fastpath.On() {
		return false, fmt.Sprintf("no fast paths on %s", runtime.GOOS)
	}
	a, err := newAIOStages(nil)
	if err != nil {
		return false, fmt.Sprintf("io_setup refused: %v", err)
	}
	a.close()
	path := filepath.Join(dir, "direct-probe")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return false, err.Error()
	}
	defer os.Remove(path)
	f, err := openDirect(path)
	if err != nil {
		return false, fmt.Sprintf("%s refuses O_DIRECT (%v): set TMPDIR to a directory on a disk", dir, err)
	}
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, dioAlign, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return false, err.Error()
	}
	defer unix.Munmap(buf)
	if err := fsat.PwriteAll(int(f.Fd()), buf, 0); err != nil {
		return false, fmt.Sprintf("%s refuses an O_DIRECT write (%v): set TMPDIR to a directory on a disk", dir, err)
	}
	return true, ""
}

// sortEntries orders entries as a comparison sort does, on both sides of
// its cut-over to a counting sort, duplicates of a key and of first bytes
// included, at both ends of the range.
func TestSortEntries(t *testing.T) {
	for _, n := range []int{0, 1, 100, 4095, 4096, 50000} {
		ents := make([]entry, n)
		for i := range ents {
			ents[i].key = keyOf(mh.Multihash(fmt.Sprint(i % 4000)))
			switch i % 7 {
			case 0:
				ents[i].key[0], ents[i].key[1] = 0, 0 // a crowded first bucket
			case 1:
				ents[i].key[0], ents[i].key[1] = 0xff, 0xff // and last
			}
			ents[i].off = uint32(i)
		}
		want := slices.Clone(ents)
		slices.SortStableFunc(want, func(a, b entry) int { return bytes.Compare(a.key[:], b.key[:]) })
		sortEntries(ents)
		for i := range ents {
			if ents[i].key != want[i].key {
				t.Fatalf("n=%d: entry %d out of order", n, i)
			}
		}
	}
}

// The idx a writer hands over as it wrote it answers every lookup as the
// same file loaded from disk does: each key's entries (a copy dropping
// the references after it), and no entry for a key it lacks.
func TestIdxWriterLoaded(t *testing.T) {
	const pack = "00112233aabbccdd"
	for _, n := range []int{1, 31, 32, 5000} {
		ents := make([]entry, n)
		for i := range ents {
			ents[i] = entry{key: keyOf(mh.Multihash(fmt.Sprint(i / 3))), kind: kindRef, off: uint32(i), size: uint32(i % 100)}
			if i%9 == 4 {
				ents[i].kind = 0 // a copy among a key's references
			}
		}
		sortEntries(ents)
		path := filepath.Join(t.TempDir(), "x.idx")
		iw, err := newIdxWriter(path, []string{pack})
		if err != nil {
			t.Fatal(err)
		}
		iw.indexAs(n + n/2) // sized for more than it gets
		for _, e := range ents {
			iw.add(e.key, e.loc(pack))
		}
		if err := iw.finish(false); err != nil {
			t.Fatal(err)
		}
		got, err := iw.loaded(path)
		if err != nil {
			t.Fatal(err)
		}
		want, err := loadIdx(path)
		if err != nil {
			t.Fatal(err)
		}
		if got.count != want.count || !slices.Equal(got.packs, want.packs) {
			t.Fatalf("n=%d: %d entries of %v, want %d of %v", n, got.count, got.packs, want.count, want.packs)
		}
		for i := range n + 50 {
			k := keyOf(mh.Multihash(fmt.Sprint(i)))
			g, gerr := got.findAll(k)
			w, werr := want.findAll(k)
			if gerr != nil || werr != nil || !slices.Equal(g, w) {
				t.Fatalf("n=%d: key %d: %v (%v), want %v (%v)", n, i, g, gerr, w, werr)
			}
		}
		got.close()
		want.close()
	}
}

// Blocks built in the place ReserveBlock lends, from two goroutines that
// both make some of the same blocks and give some places back, across
// several packs: each new block stored and counted once, all readable
// before the flush and after a reopen, nothing stored for a place given
// back.
func TestWriterReserveBlock(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		ctx := t.Context()
		dir := t.TempDir()
		s := openTest(t, dir)
		s.packs.w.limit = 10 << 20 // stages fill (4 MiB) and packs seal
		var bs []blocks.Block
		for i := range 60 {
			data := bytes.Repeat([]byte{byte(i), 1, 2, 3, 4}, (300<<10+i*7777)/5)
			h, _ := mh.Sum(data, mh.SHA2_256, -1)
			b, _ := blocks.NewBlockWithCid(data, cid.NewCidV1(cid.Raw, h))
			bs = append(bs, b)
		}
		gone := bytes.Repeat([]byte("given back"), 5000)
		goneH, _ := mh.Sum(gone, mh.SHA2_256, -1)
		w := s.NewWriter(false)
		var wg sync.WaitGroup
		var lent, notLent, stores atomicCount
		for g := range 2 {
			wg.Go(func() {
				for i, b := range bs {
					if i%2 != g && i%3 != 0 { // every third block from both
						continue
					}
					place, err := w.ReserveBlock(ctx, len(b.RawData()), len(b.Cid().Hash()))
					if err != nil {
						t.Error(err)
						return
					}
					if place == nil {
						notLent.add()
						if err := w.PutBlock(ctx, b.Cid(), b.RawData()); err != nil {
							t.Error(err)
						}
						continue
					}
					lent.add()
					copy(place.Bytes(), b.RawData())
					stored, err := place.Commit(b.Cid())
					if err != nil {
						t.Error(err)
					}
					if stored {
						stores.add()
					}
					if place, _ := w.ReserveBlock(ctx, len(gone), len(goneH)); place != nil {
						copy(place.Bytes(), gone)
						place.Commit(cid.Undef)
					}
				}
			})
		}
		wg.Wait()
		if lent.n == 0 {
			t.Fatal("no place was lent")
		}
		if w.Blocks != int64(len(bs)) || stores.n > len(bs) || stores.n == 0 {
			t.Fatalf("%d blocks counted, want %d (%d lent, %d stored there, %d put)", w.Blocks, len(bs), lent.n, stores.n, notLent.n)
		}
		checkAll(t, s.Blockstore(), bs, true)
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if has, _ := s.Blockstore().Has(ctx, cid.NewCidV1(cid.Raw, goneH)); has {
			t.Fatal("a block given back is stored")
		}
		if n := countKeys(t, s.Blockstore()); n != len(bs) {
			t.Fatalf("%d blocks indexed, want %d", n, len(bs))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openTest(t, dir)
		defer s.Close()
		checkAll(t, s.Blockstore(), bs, true)
		t.Logf("%d places lent, %d blocks put the usual way", lent.n, notLent.n)
	})
}

type atomicCount struct {
	mu sync.Mutex
	n  int
}

func (c *atomicCount) add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

// A pending copy is found by its key, through its bit in copied; a key
// sharing the bit, or with a clear one, is not; after a flush every bit is
// clear and the copy is found in the sealed pack's idx.
func TestPendingCopyBits(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	s.packs.w.limit = packMax // one pack, open until the flush
	b := testBlocks(2, "bits")[1]
	if err := s.NewWriter(false).PutBlock(t.Context(), b.Cid(), b.RawData()); err != nil {
		t.Fatal(err)
	}
	w := s.packs.w
	k := keyOf(b.Cid().Hash())
	same, other := k, k
	same[keySize-1]++ // same bit, not put
	other[0]++        // another bit
	for _, c := range []struct {
		name string
		k    key
		want bool
	}{{"put", k, true}, {"same bit", same, false}, {"other bit", other, false}} {
		if _, ok := w.pendingCopy(c.k); ok != c.want {
			t.Errorf("%s: pendingCopy %v, want %v", c.name, ok, c.want)
		}
	}
	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := range w.copied {
		if w.copied[i].Load() != 0 {
			t.Fatalf("word %d of copied set after the flush", i)
		}
	}
	if _, ok := w.pendingCopy(k); ok {
		t.Error("pendingCopy after the flush")
	}
	if has, err := s.Blockstore().Has(t.Context(), b.Cid()); err != nil || !has {
		t.Fatalf("Has after the flush: %v %v", has, err)
	}
}
