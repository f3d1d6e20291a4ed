package blockstore

import (
	"bytes"
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/chunker"
	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
	"github.com/ipfs-sync/ipfs-sync/internal/xfstest"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// usedBytes is how much of the file system at dir is in use, after its
// writes reached the disk.
func usedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := fsat.SyncFS(int(d.Fd())); err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(d.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * int64(st.Bsize)
}

// leafOf is the leaf of path's bytes data[off:off+n] as the chunker
// gives it to a LeafReferrer, raw or framed.
func leafOf(t *testing.T, path string, data []byte, off, n int, framed bool) (cid.Cid, []byte, chunker.LeafAt) {
	t.Helper()
	var st unix.Stat_t
	if err := fsat.Lstat(unix.AT_FDCWD, path, &st); err != nil {
		t.Fatal(err)
	}
	ms := metadata.FromStatT(&st)
	var head, tail []byte
	if framed {
		head, tail = []byte{0x0a, 0x99, 0x42}, []byte{0x18, 0x01}
	}
	block := append(append(append([]byte{}, head...), data[off:off+n]...), tail...)
	c, err := cid.V1Builder{Codec: cid.Raw, MhType: mh.SHA2_256}.Sum(block)
	if err != nil {
		t.Fatal(err)
	}
	return c, block, chunker.LeafAt{Path: path, Dev: uint64(st.Dev), Ino: uint64(st.Ino), Size: ms.Size, MTime: ms.MTime,
		CTime: st.Ctim.Nano(), Off: int64(off), Len: n, Head: head, Tail: tail}
}

// kinds counts the index entries of c by kind.
func kinds(t *testing.T, s *Store, c cid.Cid) (copies, refs int) {
	t.Helper()
	ls, err := s.packs.set.findAll(keyOf(c.Hash()))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.kind == kindRef {
			refs++
		} else {
			copies++
		}
	}
	return copies, refs
}

// TestReflinkLeaves stores a file's leaves through Writer.Reflinks on an
// XFS with reflinks, in each way a leaf can be laid out, and checks they
// are copies that took no space for their whole blocks, read back after
// the source is rewritten, truncated and deleted, and pass a thorough
// check; and that a source on another file system is referenced, with
// one warning.
func TestReflinkLeaves(t *testing.T) {
	mnt := xfstest.Mount(t, 320<<20)
	ctx := context.Background()
	const mib = 1 << 20
	data := make([]byte, 6*mib+1234)
	rand.New(rand.NewSource(1)).Read(data)
	for _, tc := range []struct {
		name   string
		chunk  int
		framed bool
		other  bool // the source on another file system
		cloned bool // whole blocks cloned (no space taken)
	}{
		{"raw 1 MiB chunks", mib, false, false, true},
		{"dag-pb 256 KiB chunks", 256 << 10, true, false, true},
		{"chunks not block-aligned", 20001 * 3, true, false, false},
		{"raw 20 KiB chunks", 20 << 10, false, false, true},
		{"dag-pb 20 KiB chunks", 20 << 10, true, false, true},
		{"chunks under a block", 3000, false, false, false},
		{"source on another file system", mib, false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := filepath.Join(mnt, filepath.Base(t.Name()))
			srcDir := base
			if tc.other {
				srcDir = t.TempDir()
			}
			path := filepath.Join(srcDir, "src")
			if err := os.MkdirAll(base, 0o755); err != nil {
				t.Fatal(err)
			}
			write(t, path, data)
			s, err := Open(filepath.Join(base, "repo"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var warned []string
			w := s.NewWriter(false).Reflinks(func(p string, err error) { warned = append(warned, err.Error()) })
			used := usedBytes(t, mnt)
			var leaves []cid.Cid
			var blocks [][]byte
			for off := 0; off < len(data); off += tc.chunk {
				c, block, at := leafOf(t, path, data, off, min(tc.chunk, len(data)-off), tc.framed)
				if err := w.PutLeafRef(ctx, c, block, at); err != nil {
					t.Fatal(err)
				}
				leaves, blocks = append(leaves, c), append(blocks, block)
			}
			if !tc.other {
				// The same leaf again is not stored twice (a reference
				// is, PutLeafRef).
				c, block, at := leafOf(t, path, data, 0, tc.chunk, tc.framed)
				if err := w.PutLeafRef(ctx, c, block, at); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if w.Blocks != int64(len(leaves)) {
				t.Errorf("%d blocks written for %d leaves", w.Blocks, len(leaves))
			}
			grew := usedBytes(t, mnt) - used
			// A clone's record writes its head, the framing and the
			// chunk's partial block: a block or two of its own.
			switch {
			case tc.cloned && grew > int64(len(leaves))*2*4096+512<<10:
				t.Errorf("the store took %d bytes of the file system for %d bytes in %d clones", grew, len(data), len(leaves))
			case !tc.cloned && !tc.other && grew < int64(len(data))*7/8:
				t.Errorf("the store took %d bytes for %d bytes of copies", grew, len(data))
			}
			for i, c := range leaves {
				copies, refs := kinds(t, s, c)
				if tc.other != (refs == 1) || tc.other == (copies == 1) {
					t.Errorf("leaf %d: %d copies and %d references", i, copies, refs)
				}
			}
			if tc.other != (len(warned) == 1) {
				t.Errorf("warnings: %q", warned)
			} else if tc.other {
				t.Logf("warning: %s", warned[0])
			}
			if tc.other {
				return
			}
			// What the source becomes cannot reach the store's copies.
			fd, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fd.WriteAt(bytes.Repeat([]byte{0xee}, 3*mib), mib/2); err != nil {
				t.Fatal(err)
			}
			fd.Close()
			if err := os.Truncate(path, mib); err != nil {
				t.Fatal(err)
			}
			r, err := OpenReader(s.Dir())
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for i, c := range leaves {
				b, err := r.readThorough(ctx, c)
				if err != nil || !bytes.Equal(b.RawData(), blocks[i]) {
					t.Fatalf("leaf %d after the source was rewritten: %v", i, err)
				}
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			res, err := s.Fsck(ctx, leaves, false, func(c cid.Cid, p string, err error) { t.Errorf("fsck: %s: %v", c, err) })
			if err != nil || res.Missing+res.Corrupt+res.Unavailable != 0 {
				t.Fatalf("fsck after the source was deleted: %+v %v", res, err)
			}
		})
	}
}

// TestReflinkChangedSource: a file that changed between the read of a
// leaf and its clone is not what the store keeps: it holds the bytes
// read, whether the change shows in the file's identity (a copy instead
// of a clone) or not (a write within one tick of its timestamps: the
// clone's bytes, read back, are written over).
func TestReflinkChangedSource(t *testing.T) {
	mnt := xfstest.Mount(t, 320<<20)
	ctx := context.Background()
	read := bytes.Repeat([]byte("reflink!"), 1<<17) // 1 MiB
	now := bytes.Repeat([]byte("changed!"), 1<<17)
	for _, tc := range []struct {
		name string
		// leaf gives the leaf of read's bytes, as the chunker saw the
		// file, with path holding now's bytes when it returns.
		leaf func(t *testing.T, path string) (cid.Cid, []byte, chunker.LeafAt)
	}{
		{"identity changed", func(t *testing.T, path string) (cid.Cid, []byte, chunker.LeafAt) {
			write(t, path, read)
			c, block, at := leafOf(t, path, read, 0, len(read), false)
			write(t, path, now)
			return c, block, at
		}},
		{"identity kept", func(t *testing.T, path string) (cid.Cid, []byte, chunker.LeafAt) {
			write(t, path, now)
			return leafOf(t, path, read, 0, len(read), false)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(mnt, tc.name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			c, block, at := tc.leaf(t, filepath.Join(dir, "src"))
			s, err := Open(filepath.Join(dir, "repo"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			w := s.NewWriter(false).Reflinks(nil)
			if err := w.PutLeafRef(ctx, c, block, at); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			b, err := s.readThorough(ctx, c)
			if err != nil || !bytes.Equal(b.RawData(), block) {
				t.Fatalf("leaf of a file changed before its clone: %v", err)
			}
		})
	}
}

// TestReflinkGC: gc moves the live blocks of the packs it rewrites by
// cloning them, cloned leaves and copied blocks alike, so the file
// system gains nothing while the sources still share their extents;
// blocks of fewer than minGCClone whole blocks it copies, once: the next
// gc leaves every pack as it is.
func TestReflinkGC(t *testing.T) {
	mnt := xfstest.Mount(t, 320<<20)
	ctx := context.Background()
	const chunk = 256 << 10
	s, err := Open(filepath.Join(mnt, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rw := s.NewWriter(false).Reflinks(nil)
	rng := rand.New(rand.NewSource(2))
	var keep, drop []cid.Cid
	blocks := map[cid.Cid][]byte{}
	for i := range 16 {
		size := 4*chunk + 100
		if i >= 8 {
			size = 3*4096 + 100 // cloned by sync, copied by gc
		}
		data := make([]byte, size)
		rng.Read(data)
		path := filepath.Join(mnt, "src", string(rune('a'+i)))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, path, data)
		for off := 0; off < len(data); off += chunk {
			c, block, at := leafOf(t, path, data, off, min(chunk, len(data)-off), true)
			if i%2 == 1 {
				// Copied, into an ordinary pack: gc clones those too.
				err = rw.PutBlock(ctx, c, block)
			} else {
				err = rw.PutLeafRef(ctx, c, block, at)
			}
			if err != nil {
				t.Fatal(err)
			}
			blocks[c] = block
			if i%8 < 2 {
				keep = append(keep, c)
			} else {
				drop = append(drop, c)
			}
		}
	}
	if err := rw.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	used := usedBytes(t, mnt)
	res, err := s.GC(ctx, keep)
	if err != nil {
		t.Fatal(err)
	}
	if res.Kept != int64(len(keep)) || res.Removed != int64(len(drop)) {
		t.Fatalf("gc: %+v, want %d kept and %d removed", res, len(keep), len(drop))
	}
	// Every block kept that spans enough whole blocks is moved by
	// cloning; the small files and short last leaves are copied.
	var big int64
	for _, c := range keep {
		if len(blocks[c]) >= (minGCClone+2)*4096 {
			big++
		}
	}
	if res.Cloned != big || big == 0 {
		t.Errorf("gc cloned %d of the %d blocks it moved, want %d", res.Cloned, len(keep), big)
	}
	if grew := usedBytes(t, mnt) - used; grew > 0 {
		t.Logf("the file system has %d bytes more in use after gc", grew)
		if grew > int64(len(keep))*chunk/8 {
			t.Errorf("gc took %d bytes of the file system to move %d blocks", grew, len(keep))
		}
	}
	for _, c := range keep {
		b, err := s.readThorough(ctx, c)
		if err != nil || !bytes.Equal(b.RawData(), blocks[c]) {
			t.Fatalf("block %s after gc: %v", c, err)
		}
	}
	for _, c := range drop {
		if _, err := s.Blockstore().Get(ctx, c); err == nil {
			t.Fatalf("block %s kept by gc", c)
		}
	}
	// The packs gc wrote are full of live blocks: the next gc leaves them.
	packs, err := filepath.Glob(filepath.Join(s.Dir(), packsDir, "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := s.GC(ctx, keep); err != nil || res.Cloned != 0 || res.Removed != 0 {
		t.Fatalf("second gc: %+v %v", res, err)
	}
	if again, _ := filepath.Glob(filepath.Join(s.Dir(), packsDir, "*.pack")); !slices.Equal(packs, again) {
		t.Errorf("the second gc rewrote packs: %v, then %v", packs, again)
	}
}

// TestReflinkConcurrent clones the leaves of several files from two
// goroutines at once, as a sync's workers do, two of the files alike
// (the same leaves twice), into packs small enough to be sealed while
// clones are being read back; every leaf then reads whole.
func TestReflinkConcurrent(t *testing.T) {
	mnt := xfstest.Mount(t, 320<<20)
	ctx := context.Background()
	s, err := Open(filepath.Join(mnt, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.packs.w.limit = 1 << 20
	w := s.NewWriter(false).Reflinks(nil)
	const chunk = 64 << 10
	rng := rand.New(rand.NewSource(3))
	var datas [][]byte
	for i := range 6 {
		data := make([]byte, 20*chunk+4096+7)
		rng.Read(data)
		if i == 5 {
			data = datas[4]
		}
		datas = append(datas, data)
		write(t, filepath.Join(mnt, string(rune('a'+i))), data)
	}
	type leaf struct {
		c     cid.Cid
		block []byte
		at    chunker.LeafAt
	}
	leaves := make([][]leaf, len(datas))
	blocks := map[cid.Cid][]byte{}
	for i, data := range datas {
		for off := 0; off < len(data); off += chunk {
			c, block, at := leafOf(t, filepath.Join(mnt, string(rune('a'+i))), data, off, min(chunk, len(data)-off), i == 1 || i == 3)
			leaves[i] = append(leaves[i], leaf{c, block, at})
			blocks[c] = block
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(leaves); i += 2 {
				for _, l := range leaves[i] {
					if err := w.PutLeafRef(ctx, l.c, l.block, l.at); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for c, block := range blocks {
		b, err := s.readThorough(ctx, c)
		if err != nil || !bytes.Equal(b.RawData(), block) {
			t.Fatalf("leaf %s: %v", c, err)
		}
	}
}
