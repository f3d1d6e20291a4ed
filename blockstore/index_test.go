package blockstore

import (
	"context"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func TestIndexDirFind(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	entry := func(i int) IndexEntry {
		h, _ := mh.Sum([]byte{byte(i)}, mh.SHA2_256, -1)
		return IndexEntry{Cid: cid.NewCidV1(cid.DagProtobuf, h), Size: int64(i), MTime: time.Unix(int64(i), 5).UTC(), Mode: 0o644, XXH: uint64(i)}
	}
	// Names chosen to sit next to the separators in byte order: a
	// directory's entries must not mix with its subdirectories' or a
	// sibling's that shares its name as a prefix.
	paths := []string{"a", "a b", "a.b", "a/x", "a/x/y", "a/z", "a0", "a\x01", "b/a", "\u00e9"}
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
		names []string // asked in increasing order
		want  map[string]int
	}{
		{"", []string{"a", "a b", "a.b", "a/x", "a0", "a\x01", "b", "x", "\u00e9"},
			map[string]int{"a": 0, "a b": 1, "a.b": 2, "a0": 6, "a\x01": 7, "\u00e9": 9}},
		{"a", []string{"x", "y", "z"}, map[string]int{"x": 3, "z": 5}},
		{"a/x", []string{"y"}, map[string]int{"y": 4}},
		{"b", []string{"a"}, map[string]int{"a": 8}},
		{"nowhere", []string{"a"}, map[string]int{}},
	}
	for _, tc := range cases {
		d := ix.Dir(tc.dir)
		for _, name := range tc.names {
			got, ok := d.Find(name)
			i, want := tc.want[name]
			if ok != want || (ok && (got.Size != int64(i) || !got.Cid.Equals(entry(i).Cid) || !got.MTime.Equal(entry(i).MTime))) {
				t.Errorf("dir %q: Find(%q) = %+v, %v; want entry %d, %v", tc.dir, name, got, ok, i, want)
			}
		}
		d.Close()
	}
	for i, p := range paths {
		if got, ok := ix.Get(ctx, p); !ok || got.XXH != uint64(i) {
			t.Errorf("Get(%q) = %+v, %v", p, got, ok)
		}
	}
}
