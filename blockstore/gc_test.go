package blockstore

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/ipfs-sync/ipfs-sync/internal/dagtest"
)

type ents = dagtest.Entries

// gcTree is two versions of a tree as a sync stores them, with metadata
// (dag-pb leaves) or without (raw leaves); the second replaces b/h.
//
//	a/f (two chunks), a/g, b/h, e (an empty file), z/empty (an empty raw block)
//
// z links its empty block with a Tsize of 0, so z's own size equals its
// Tsize: Reach does not read z and never sees the empty block below it.
func gcTree(meta bool) (d *dagtest.DAG, v1, v2 *ipld.Link) {
	d = dagtest.New()
	file := d.Raw
	if meta {
		file = d.Leaf
	}
	empty := d.Raw("empty", "")
	e := empty
	if meta {
		e = d.Leaf("e", "")
	}
	a := d.Dir("a", ents{"f": d.File("f", file("c1", "first chunk"), file("c2", "second chunk")), "g": file("g", "file g")})
	z := d.Dir("z", ents{"empty": empty})
	v1 = d.Dir("root1", ents{"a": a, "b": d.Dir("b1", ents{"h": file("h1", "h, first version")}), "e": e, "z": z})
	v2 = d.Dir("root2", ents{"a": a, "b": d.Dir("b2", ents{"h": file("h2", "h, replaced entirely")}), "e": e, "z": z})
	return d, v1, v2
}

// TestGCKeepsWhatRootsReach: gc keeps every block under the roots it is
// given, and empty blocks, even one below a node Reach does not read; it
// removes the rest, and what it kept is there after a reopen.
func TestGCKeepsWhatRootsReach(t *testing.T) {
	for _, meta := range []bool{true, false} {
		d, v1, v2 := gcTree(meta)
		shared := []string{"a", "c1", "c2", "empty", "f", "g", "z"}
		if meta {
			shared = append(shared, "e")
		}
		only1, only2 := []string{"b1", "h1", "root1"}, []string{"b2", "h2", "root2"}
		tests := []struct {
			name  string
			roots []*ipld.Link
			kept  []string
		}{
			{"the newest root", []*ipld.Link{v2}, slices.Concat(shared, only2)},
			{"the older root", []*ipld.Link{v1}, slices.Concat(shared, only1)},
			{"both roots", []*ipld.Link{v1, v2}, slices.Concat(shared, only1, only2)},
			{"no root: empty blocks only", nil, []string{"empty"}},
		}
		for _, tt := range tests {
			t.Run(map[bool]string{true: "metadata", false: "raw leaves"}[meta]+"/"+tt.name, func(t *testing.T) {
				dir := t.TempDir()
				s := openTest(t, dir)
				putDAG(t, s, d)
				var roots []cid.Cid
				for _, r := range tt.roots {
					roots = append(roots, r.Cid)
				}
				res, err := s.GC(t.Context(), roots)
				if err != nil {
					t.Fatal(err)
				}
				all := len(d.Blocks())
				if res.Roots != len(roots) || res.Kept != int64(len(tt.kept)) || res.Removed != int64(all-len(tt.kept)) {
					t.Errorf("gc: %+v, want %d kept and %d removed", res, len(tt.kept), all-len(tt.kept))
				}
				checkKept(t, s, d, tt.kept)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = openTest(t, dir)
				defer s.Close()
				checkKept(t, s, d, tt.kept)
				if fs, err := s.Fsck(t.Context(), roots, false, func(c cid.Cid, p string, err error) {
					t.Errorf("after gc, %s at %s: %v", d.Name(c), p, err)
				}); err != nil || s.Damaged() {
					t.Fatalf("fsck after gc: %+v, %v, damaged %v", fs, err, s.Damaged())
				}
			})
		}
	}
}

// TestGCAfterRetire: the versions Retire keeps are what gc is given, as
// `ipfs-sync gc --keep 1` does: the older version's own blocks go, the
// newest stays whole.
func TestGCAfterRetire(t *testing.T) {
	d, v1, v2 := gcTree(false)
	s := openTest(t, t.TempDir())
	defer s.Close()
	putDAG(t, s, d)
	for i, r := range []*ipld.Link{v1, v2} {
		if err := s.Advance("tree", Version{Root: r.Cid.String(), Time: time.Unix(int64(i), 0)}); err != nil {
			t.Fatal(err)
		}
	}
	kept, err := s.Retire(1)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 1 || kept[0] != v2.Cid.String() {
		t.Fatalf("Retire(1) kept %v, want only %s", kept, v2.Cid)
	}
	res, err := s.GC(t.Context(), []cid.Cid{cid.MustParse(kept[0])})
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != 3 {
		t.Errorf("gc removed %d blocks, want root1, b1 and h1", res.Removed)
	}
	checkKept(t, s, d, []string{"a", "b2", "c1", "c2", "empty", "f", "g", "h2", "root2", "z"})
}

// TestGCIncompleteRoot: a root with a block missing stops gc before it
// removes anything: what is missing may be what a later sync needs to
// find again in the blocks gc would have removed.
func TestGCIncompleteRoot(t *testing.T) {
	d, v1, v2 := gcTree(true)
	s := openTest(t, t.TempDir())
	defer s.Close()
	putDAG(t, s, d)
	lost := d.Block("h2").Cid()
	if err := s.Blockstore().DeleteBlock(t.Context(), lost); err != nil {
		t.Fatal(err)
	}
	res, err := s.GC(t.Context(), []cid.Cid{v2.Cid})
	if err == nil || !strings.Contains(err.Error(), "nothing removed") || !strings.Contains(err.Error(), lost.String()) {
		t.Fatalf("gc of a root lacking h2: %+v, %v; want an error naming %s", res, err, lost)
	}
	if has, err := s.Blockstore().Has(t.Context(), v1.Cid); err != nil || !has {
		t.Fatalf("root1 removed by a gc that failed: %v", err)
	}
}

// TestGCNeedsWriter: a reader, which runs beside a sync, cannot collect.
func TestGCNeedsWriter(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	d, _, v2 := gcTree(false)
	putDAG(t, s, d)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.GC(t.Context(), []cid.Cid{v2.Cid}); err == nil || !strings.Contains(err.Error(), "opened for writing") {
		t.Fatalf("gc through a reader: %v", err)
	}
}

// putDAG writes every block of d, as a sync does, and makes them durable.
func putDAG(t *testing.T, s *Store, d *dagtest.DAG) {
	t.Helper()
	w := s.NewWriter(false)
	for _, b := range d.Blocks() {
		if err := w.Put(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// checkKept fails unless s holds exactly the blocks of d named in kept.
func checkKept(t *testing.T, s *Store, d *dagtest.DAG, kept []string) {
	t.Helper()
	var got []cid.Cid
	for _, b := range d.Blocks() {
		has, err := s.Blockstore().Has(t.Context(), b.Cid())
		if err != nil {
			t.Fatal(err)
		}
		if has {
			got = append(got, b.Cid())
		}
	}
	want := slices.Sorted(slices.Values(kept))
	if names := d.Names(got); !slices.Equal(names, want) {
		t.Errorf("store holds %v, want %v", names, want)
	}
}
