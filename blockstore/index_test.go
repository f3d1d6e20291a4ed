package blockstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// openIndexTest is a store in a temporary directory, closed after the test.
func openIndexTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testEntry is an index entry told apart by i.
func testEntry(i int) IndexEntry {
	h, _ := mh.Sum([]byte(fmt.Sprint(i)), mh.SHA2_256, -1)
	return IndexEntry{Cid: cid.NewCidV1(cid.DagProtobuf, h), Size: int64(i), MTime: time.Unix(int64(i), 5).UTC(), Mode: 0o644, XXH: uint64(i)}
}

func TestIndexDirFind(t *testing.T) {
	ctx := context.Background()
	s := openIndexTest(t)
	entry := testEntry
	// Names chosen to sit next to the separators in byte order: a
	// directory's entries must not mix with its subdirectories' or a
	// sibling's that shares its name as a prefix.
	paths := []string{"a", "a b", "a.b", "a/x", "a/x/y", "a/z", "a0", "a\x01", "b/a", "\u00e9"}
	// A directory with more entries between two asked names than Find
	// steps over before it seeks.
	for i := range 2 * maxSteps {
		paths = append(paths, fmt.Sprintf("many/m%02d", i))
	}
	ix := s.Index("ref")
	for i, p := range paths {
		if err := ix.Put(ctx, p, entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Index("other").Put(ctx, "a", entry(99)); err != nil {
		t.Fatal(err)
	}
	if err := ix.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Index("other").Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		dir   string
		names []string // asked in this order
		want  map[string]int
	}{
		{"", []string{"a", "a b", "a.b", "a/x", "a0", "a\x01", "b", "x", "\u00e9"},
			map[string]int{"a": 0, "a b": 1, "a.b": 2, "a0": 6, "a\x01": 7, "\u00e9": 9}},
		{"a", []string{"x", "y", "z"}, map[string]int{"x": 3, "z": 5}},
		{"a/x", []string{"y"}, map[string]int{"y": 4}},
		{"b", []string{"a"}, map[string]int{"a": 8}},
		{"nowhere", []string{"a"}, map[string]int{}},
		{"many", []string{"m00", "m01x", "m14", "m15", "m15", "m03", "m04", "zz", "m00"},
			map[string]int{"m00": 10, "m14": 24, "m15": 25, "m03": 13, "m04": 14}},
	}
	for _, blocksFirst := range []bool{false, true} {
		for _, tc := range cases {
			checkFinds(t, ix, tc.dir, tc.names, tc.want, entry, blocksFirst)
		}
	}
	for i, p := range paths {
		if got, ok := ix.Get(ctx, p); !ok || got.XXH != uint64(i) {
			t.Errorf("Get(%q) = %+v, %v", p, got, ok)
		}
	}
}

// checkFinds asks a DirIndex for names in order (after Blocks, as a walk
// does, when blocksFirst) and checks each answer.
func checkFinds(t *testing.T, ix *Index, dir string, names []string, want map[string]int, entry func(int) IndexEntry, blocksFirst bool) {
	t.Helper()
	d := ix.Dir(dir)
	defer d.Close()
	if blocksFirst {
		d.Blocks()
	}
	for _, name := range names {
		got, ok := d.Find(name)
		i, wantOK := want[name]
		if ok != wantOK || (ok && (got.Size != int64(i) || !got.Cid.Equals(entry(i).Cid) || !got.MTime.Equal(entry(i).MTime))) {
			t.Errorf("dir %q (Blocks first: %v): Find(%q) = %+v, %v; want entry %d, %v", dir, blocksFirst, name, got, ok, i, wantOK)
		}
	}
}

// An entry keeps its content hash through encoding; an entry written by
// an earlier version (an xxhash64, no tag) reads with the hash unknown,
// and a damaged one is refused.
func TestIndexEntryEncoding(t *testing.T) {
	h, _ := mh.Sum([]byte("x"), mh.SHA2_256, -1)
	e := IndexEntry{Cid: cid.NewCidV1(cid.DagProtobuf, h), Size: 12345, MTime: time.Unix(1_700_000_000, 789).UTC(), Mode: 0o4755, XXH: 0xfeedface}
	b := appendEntry(nil, e)
	for _, tc := range []struct {
		name string
		b    []byte
		want IndexEntry
		err  bool
	}{
		{"current", b, e, false},
		{"earlier version", b[:len(b)-1], IndexEntry{Cid: e.Cid, Size: e.Size, MTime: e.MTime, Mode: e.Mode}, false},
		{"unknown tag", append(b[:len(b)-1:len(b)-1], 7), IndexEntry{}, true},
		{"cut short", b[:len(b)-3], IndexEntry{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeEntry(tc.b)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error: %v", err, tc.err)
			}
			if err == nil && (!got.Cid.Equals(tc.want.Cid) || got.Size != tc.want.Size || !got.MTime.Equal(tc.want.MTime) || got.Mode != tc.want.Mode || got.XXH != tc.want.XXH) {
				t.Fatalf("decoded %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Two writers' entries, over several full batches committed off the
// index's lock, are all there after a Flush, and a path put again after
// its first batch was handed over keeps its last entry.
func TestIndexConcurrentPuts(t *testing.T) {
	ctx := context.Background()
	s := openIndexTest(t)
	entry := testEntry
	const per = 3 * 4096
	ix := s.Index("ref")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for g := range 2 {
		wg.Go(func() {
			for i := range per {
				if errs[g] = ix.Put(ctx, fmt.Sprintf("d%d/f%05d", g, i), entry(g*per+i)); errs[g] != nil {
					return
				}
			}
			errs[g] = ix.Put(ctx, fmt.Sprintf("d%d/f%05d", g, 0), entry(-1))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if err := ix.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for g := range 2 {
		for i := range per {
			want := g*per + i
			if i == 0 {
				want = -1
			}
			e, ok := ix.Get(ctx, fmt.Sprintf("d%d/f%05d", g, i))
			if !ok || e.Size != int64(want) {
				t.Fatalf("d%d/f%05d: %v %d, want size %d", g, i, ok, e.Size, want)
			}
		}
	}
}
