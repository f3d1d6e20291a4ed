package blockstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"golang.org/x/sys/unix"
)

// A write failure is made by the kernel, not simulated: RLIMIT_FSIZE makes
// every write past a file offset fail with EFBIG (and SIGXFSZ, which a Go
// program ignores), as ENOSPC or EIO would fail it, at an offset the test
// chooses, so the failing write is the one that seals a pack. The limit is
// the whole process's: these tests do not run in parallel with others.

// limitFileSize makes writes past size bytes of any file fail until the
// test ends.
func limitFileSize(t *testing.T, size uint64) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: size, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
			t.Fatal(err)
		}
	})
}

// bigBlock is a raw block of size bytes, distinct for each seed.
func bigBlock(seed, size int) blocks.Block {
	data := bytes.Repeat([]byte(fmt.Sprintf("%08d", seed)), size/8)
	h, _ := mh.Sum(data, mh.SHA2_256, -1)
	b, _ := blocks.NewBlockWithCid(data, cid.NewCidV1(cid.Raw, h))
	return b
}

// TestSealWriteFailureWaitsForStages: the write that seals a pack fails
// while a full stage of the pack is still being copied into (a place lent
// by ReserveBlock and not yet given back). The seal must not return, nor
// let the pack's descriptor go, until that stage is written: a stage
// written after, through a descriptor closed by then, went to whatever
// file the kernel had given the number since (a new pack, pebble's).
func TestSealWriteFailureWaitsForStages(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		ctx := t.Context()
		dir := t.TempDir()
		s := openTest(t, dir)
		pw := s.packs.w
		pw.limit = 10 << 20
		// Stages 0 and 1 ([0, 8 MiB)) fit; the last, partly full stage
		// written at the seal does not.
		limitFileSize(t, 8<<20+dioAlign)
		w := s.NewWriter(false)
		lent, err := w.ReserveBlock(ctx, 1000, 34)
		if err != nil || lent == nil {
			t.Fatalf("reserve: %v %v", lent, err)
		}
		given := false
		giveBack := func() {
			if !given {
				given = true
				lent.Commit(cid.Undef)
			}
		}
		pw.mu.Lock()
		p := pw.cur
		pw.mu.Unlock()
		for i := range 9 { // ~9 MiB: stage 0 full (held), 1 full, 2 in part
			b := bigBlock(i, 1<<20)
			if err := w.PutBlock(ctx, b.Cid(), b.RawData()); err != nil {
				t.Fatal(err)
			}
		}
		if pw.cur != p || p.size <= 8<<20 {
			t.Fatalf("the blocks did not fill the first pack past 8 MiB (%d bytes)", p.size)
		}
		sealed := make(chan error, 1)
		go func() {
			b := bigBlock(9, 1<<20) // past the limit: seals the pack
			sealed <- s.NewWriter(false).PutBlock(ctx, b.Cid(), b.RawData())
		}()
		var early error
		select {
		case early = <-sealed:
		case <-time.After(300 * time.Millisecond):
		}
		if early != nil {
			t.Errorf("the seal returned (%v) while its pack's first stage was still being copied into", early)
			if p.direct {
				if _, err := unix.FcntlInt(uintptr(p.fd), unix.F_GETFD, 0); errors.Is(err, unix.EBADF) {
					// The number is free: give it to another file, as
					// the kernel would to the next one opened.
					other, err := os.Create(filepath.Join(t.TempDir(), "other"))
					if err != nil {
						t.Fatal(err)
					}
					defer other.Close()
					if int(other.Fd()) != p.fd {
						if err := unix.Dup2(int(other.Fd()), p.fd); err != nil {
							t.Fatal(err)
						}
					}
					giveBack()
					for range 100 {
						if fi, _ := other.Stat(); fi.Size() > 0 {
							t.Fatalf("the stage was written after the seal into another file that took the pack's descriptor number (%d bytes)", fi.Size())
						}
						time.Sleep(10 * time.Millisecond)
					}
				}
			}
		}
		giveBack()
		err = early
		if err == nil {
			err = <-sealed
		}
		if !errors.Is(err, unix.EFBIG) {
			t.Fatalf("the seal's write failure: %v, want EFBIG", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestWriteFailuresAtPackBoundaries: four writers put blocks, through
// ReserveBlock and PutBlock, across many pack boundaries; a pack seals at
// 9.5 to 10 MiB, and the write that seals those past 9.75 MiB fails. Nothing hangs or races, and every block the store indexes
// afterwards reads back whole: no stage of a failed pack was written into
// a later one.
func TestWriteFailuresAtPackBoundaries(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		ctx := t.Context()
		dir := t.TempDir()
		s := openTest(t, dir)
		s.packs.w.limit = 10 << 20
		limitFileSize(t, 39<<18)
		var wg sync.WaitGroup
		var failures atomicCount
		for g := range 4 {
			wg.Go(func() {
				w := s.NewWriter(false)
				for i := range 100 {
					b := bigBlock(g*1000+i, 200<<10+(g*7+i*13)%300<<10)
					err := putReserved(ctx, w, b)
					if err != nil {
						if !errors.Is(err, unix.EFBIG) {
							t.Errorf("writer %d: %v, want EFBIG", g, err)
							return
						}
						failures.add()
						w = s.NewWriter(false) // a Writer stops at its first error
					}
				}
			})
		}
		wg.Wait()
		if failures.n == 0 {
			t.Fatal("no write failed")
		}
		// What was sealed before the failures, and the small last pack,
		// are durable and named.
		if err := s.Sync(ctx); err != nil && !errors.Is(err, unix.EFBIG) {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openTest(t, dir)
		defer s.Close()
		n := 0
		for c := range mustKeys(t, s) {
			if _, err := s.Blockstore().Get(ctx, c); err != nil {
				t.Errorf("indexed block %s: %v", c, err)
			}
			n++
		}
		t.Logf("%d writes failed; %d blocks indexed, all whole", failures.n, n)
	})
}

// putReserved stores b in a place ReserveBlock lends where it can (built
// there, as the chunker does), else with PutBlock.
func putReserved(ctx context.Context, w *Writer, b blocks.Block) error {
	lent, err := w.ReserveBlock(ctx, len(b.RawData()), len(b.Cid().Hash()))
	if err != nil {
		return err
	}
	if lent == nil {
		return w.PutBlock(ctx, b.Cid(), b.RawData())
	}
	copy(lent.Bytes(), b.RawData())
	_, err = lent.Commit(b.Cid())
	return err
}

func mustKeys(t *testing.T, s *Store) <-chan cid.Cid {
	t.Helper()
	ch, err := s.Blockstore().AllKeysChan(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return ch
}
