package blockstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/zeebo/xxh3"
)

// storeOf writes bs into a new repository, durably, and closes it.
func storeOf(t *testing.T, bs []blocks.Block) string {
	t.Helper()
	dir := t.TempDir()
	s := openTest(t, dir)
	putAll(t, s, bs)
	if err := s.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rewriteIdx rewrites every idx of the repository at dir in the format of
// version (1 or 2), each entry passed through edit, with a good checksum:
// what an earlier version wrote, or an index whose entries lie.
func rewriteIdx(t *testing.T, dir string, version int, edit func(*entry)) {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, packsDir, "*.idx"))
	if len(paths) == 0 {
		t.Fatal("no index")
	}
	for _, path := range paths {
		x, err := loadIdx(path)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		out.WriteString(map[int]string{1: idxMagic1, 2: idxMagic}[version])
		out.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(x.packs))))
		head := make([]byte, x.entries-int64(len(idxMagic)+4))
		if _, err := x.f.ReadAt(head, int64(len(idxMagic)+4)); err != nil {
			t.Fatal(err)
		}
		out.Write(head)
		err = x.each(func(e entry, _ string) error {
			edit(&e)
			var b [entrySize]byte
			e.encode(b[:])
			if version == 1 {
				out.Write(b[:entrySize1])
			} else {
				out.Write(b[:])
			}
			return nil
		})
		x.close()
		if err != nil {
			t.Fatal(err)
		}
		out.Write(binary.LittleEndian.AppendUint32(nil, uint32(x.count)))
		out.Write(binary.LittleEndian.AppendUint64(nil, xxhash.Sum64(out.Bytes())))
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// flipData flips one byte in the middle of b's data in its pack.
func flipData(t *testing.T, dir string, b blocks.Block) {
	t.Helper()
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, ok, err := r.packs.lookup(keyOf(b.Cid().Hash()))
	r.Close()
	if err != nil || !ok {
		t.Fatalf("block %s not found: %v", b.Cid(), err)
	}
	f, err := os.OpenFile(filepath.Join(dir, packsDir, l.pack+".pack"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	at := int64(l.off) + recordHead + int64(len(b.Cid().Hash())) + int64(l.size/2)
	var c [1]byte
	if _, err := f.ReadAt(c[:], at); err != nil {
		t.Fatal(err)
	}
	c[0] ^= 0x20
	if _, err := f.WriteAt(c[:], at); err != nil {
		t.Fatal(err)
	}
}

// Every way of reading a block refuses one whose data was changed on disk
// (ErrCorrupt), whether its index is of version 2 (checked by the sum)
// or 1 (by the CID's hash), and fsck counts it; the blocks around it read.
func TestReadChecksBlocks(t *testing.T) {
	reads := map[string]func(s *Store, c cid.Cid) ([]byte, error){
		"Get": func(s *Store, c cid.Cid) ([]byte, error) {
			b, err := s.Blockstore().Get(t.Context(), c)
			if err != nil {
				return nil, err
			}
			return b.RawData(), nil
		},
		"ReadBlock": func(s *Store, c cid.Cid) ([]byte, error) {
			return s.ReadBlock(t.Context(), c, make([]byte, 0, 64))
		},
		"readThorough": func(s *Store, c cid.Cid) ([]byte, error) {
			b, err := s.readThorough(t.Context(), c)
			if err != nil {
				return nil, err
			}
			return b.RawData(), nil
		},
	}
	for _, version := range []int{1, 2} {
		bs := testBlocks(30, "flip")
		dir := storeOf(t, bs)
		if version == 1 {
			rewriteIdx(t, dir, 1, func(*entry) {})
		}
		bad := bs[9]
		flipData(t, dir, bad)
		r, err := OpenReader(dir)
		if err != nil {
			t.Fatal(err)
		}
		for name, read := range reads {
			if _, err := read(r, bad.Cid()); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), bad.Cid().String()) {
				t.Errorf("v%d %s of the changed block: %v, want ErrCorrupt naming it", version, name, err)
			}
			for _, b := range []blocks.Block{bs[8], bs[10]} {
				if got, err := read(r, b.Cid()); err != nil || !bytes.Equal(got, b.RawData()) {
					t.Errorf("v%d %s of a good block: %v", version, name, err)
				}
			}
		}
		r.Close()
		s := openTest(t, dir)
		res, err := s.Fsck(t.Context(), []cid.Cid{bad.Cid(), bs[8].Cid()}, false, func(cid.Cid, string, error) {})
		s.Close()
		if err != nil || res.Corrupt != 1 || res.Blocks != 1 {
			t.Errorf("v%d fsck: %+v %v, want one corrupt, one good", version, res, err)
		}
	}
}

// A version 1 index is read as written (no sums: reads check the CID's
// hash), and a merge writes its entries into a version 2 index with the
// sums of their blocks, except a corrupt one, which keeps none and goes
// on being reported.
func TestIndexVersion1Merged(t *testing.T) {
	bs := testBlocks(60, "v1")
	dir := storeOf(t, bs)
	rewriteIdx(t, dir, 1, func(*entry) {})
	bad := bs[7]
	flipData(t, dir, bad)

	s := openTest(t, dir)
	defer s.Close()
	for _, x := range s.packs.set.sorted() {
		if x.esize != entrySize1 {
			t.Fatalf("index %s read as version 2", x.name)
		}
	}
	good := append(append([]blocks.Block{}, bs[:7]...), bs[8:]...)
	checkAll(t, s.Blockstore(), good, true)
	if err := s.packs.w.compact(nil, nil); err != nil {
		t.Fatal(err)
	}
	xs := s.packs.set.sorted()
	if len(xs) != 1 || xs[0].esize != entrySize {
		t.Fatalf("after the merge: %d indexes, the first of %d-byte entries", len(xs), xs[0].esize)
	}
	sums := map[key]uint64{}
	err := xs[0].each(func(e entry, _ string) error {
		sums[e.key] = e.sum
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range good {
		if want := xxh3.Hash(b.RawData()); sums[keyOf(b.Cid().Hash())] != want {
			t.Errorf("block %s: sum %x, want %x", b.Cid(), sums[keyOf(b.Cid().Hash())], want)
		}
	}
	if sum, ok := sums[keyOf(bad.Cid().Hash())]; !ok || sum != 0 {
		t.Errorf("the corrupt block: in the index %v, sum %x; want kept without a sum", ok, sum)
	}
	checkAll(t, s.Blockstore(), good, true)
	if _, err := s.Blockstore().Get(t.Context(), bad.Cid()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("the corrupt block after the merge: %v", err)
	}
}

// What an index says of a record is checked too: a sum that is not the
// block's is corruption (reads and fsck report it), and a record of a
// kind this version does not know is an error naming the kind.
func TestIndexEntryChecked(t *testing.T) {
	bs := testBlocks(20, "entry")
	target := keyOf(bs[5].Cid().Hash())
	for _, tc := range []struct {
		name string
		edit func(*entry)
		want func(error) bool
	}{
		{"wrong sum", func(e *entry) { e.sum ^= 1 }, func(err error) bool { return errors.Is(err, ErrCorrupt) }},
		{"unknown kind", func(e *entry) { e.kind = 9 }, func(err error) bool {
			return err != nil && !errors.Is(err, ErrCorrupt) && strings.Contains(err.Error(), "kind 9")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := storeOf(t, bs)
			rewriteIdx(t, dir, 2, func(e *entry) {
				if e.key == target {
					tc.edit(e)
				}
			})
			s := openTest(t, dir)
			defer s.Close()
			if _, err := s.Blockstore().Get(t.Context(), bs[5].Cid()); !tc.want(err) {
				t.Errorf("read: %v", err)
			}
			checkAll(t, s.Blockstore(), bs[6:], true)
			res, err := s.Fsck(t.Context(), []cid.Cid{bs[5].Cid()}, false, func(cid.Cid, string, error) {})
			if tc.name == "wrong sum" && (err != nil || res.Corrupt != 1) {
				t.Errorf("fsck: %+v %v, want the block corrupt", res, err)
			}
		})
	}
}
