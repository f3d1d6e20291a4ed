package export

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/internal/cartest"
	"github.com/ipfs-sync/ipfs-sync/internal/dagtest"
)

type ents = dagtest.Entries

// storeOf is a repository holding every block of d but those named in
// drop: what a walk must not need is taken out of its reach.
func storeOf(t *testing.T, d *dagtest.DAG, drop ...string) *blockstore.Store {
	t.Helper()
	ctx := t.Context()
	s, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	w := s.NewWriter(false)
	for _, b := range d.Blocks() {
		if err := w.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range drop {
		if err := s.Blockstore().DeleteBlock(ctx, d.Block(name).Cid()); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// sinceCase is two versions of a tree in one DAG: old (nil: none) and
// root. Blocks named in drop are not in the store, and want is the
// names of the blocks sent, or, with err set, a word of the error.
type sinceCase struct {
	name      string
	old, root *ipld.Link
	drop      []string
	want      []string
	err       string
}

// sinceCases are the changes a sync makes between two runs. A block
// unchanged at its place is dropped from the store in most cases: the
// walk must skip it without reading it, so that its cost follows the
// change, not the tree.
func sinceCases() (*dagtest.DAG, []sinceCase) {
	d := dagtest.New()
	var cases []sinceCase
	add := func(c sinceCase) { cases = append(cases, c) }

	// root1: a/{f: [c1 c2], g}, b/{h}, e (empty)
	c1, c2 := d.Raw("c1", "chunk one"), d.Raw("c2", "chunk two")
	f1 := d.File("f1", c1, c2)
	g := d.Raw("g", "small file g")
	a1 := d.Dir("a1", ents{"f": f1, "g": g})
	h := d.Leaf("h", "file h with metadata")
	b := d.Dir("b", ents{"h": h})
	e := d.Raw("e", "")
	root1 := d.Dir("root1", ents{"a": a1, "b": b, "e": e})
	add(sinceCase{name: "no old root: every block once", root: root1,
		want: []string{"a1", "b", "c1", "c2", "e", "f1", "g", "h", "root1"}})
	add(sinceCase{name: "same root: nothing", old: root1, root: root1, drop: []string{"root1"}})

	// A chunk of a/f rewritten: the path down to it and the chunk.
	c3 := d.Raw("c3", "chunk three")
	a2 := d.Dir("a2", ents{"f": d.File("f2", c1, c3), "g": g})
	root2 := d.Dir("root2", ents{"a": a2, "b": b, "e": e})
	add(sinceCase{name: "a chunk changed deep in the tree", old: root1, root: root2,
		drop: []string{"b", "h", "c1", "g"}, want: []string{"a2", "c3", "f2", "root2"}})

	// A chunk appended: the chunks before it are aligned by index.
	c4 := d.Raw("c4", "chunk four")
	a3 := d.Dir("a3", ents{"f": d.File("f3", c1, c2, c4), "g": g})
	root3 := d.Dir("root3", ents{"a": a3, "b": b, "e": e})
	add(sinceCase{name: "a chunk appended", old: root1, root: root3,
		drop: []string{"b", "c1", "c2", "g"}, want: []string{"a3", "c4", "f3", "root3"}})

	// g removed and i added in a: i only; b untouched.
	i := d.Leaf("i", "new file i")
	root4 := d.Dir("root4", ents{"a": d.Dir("a4", ents{"f": f1, "i": i}), "b": b, "e": e})
	add(sinceCase{name: "an entry removed, another added", old: root1, root: root4,
		drop: []string{"b", "f1", "c1", "c2"}, want: []string{"a4", "i", "root4"}})

	// a/f renamed to a/f.old: the old directory names its CID, so none
	// of its blocks is read or sent.
	root5 := d.Dir("root5", ents{"a": d.Dir("a5", ents{"f.old": f1, "g": g}), "b": b, "e": e})
	add(sinceCase{name: "a file renamed in its directory", old: root1, root: root5,
		drop: []string{"f1", "c1", "c2", "b"}, want: []string{"a5", "root5"}})

	// b/h moved to a/h: a, walked before b, never saw h under the old
	// b, so h is sent again; the cost WalkSince's comment states, never
	// a missing block.
	a6 := d.Dir("a6", ents{"f": f1, "g": g, "h": h})
	root6 := d.Dir("root6", ents{"a": a6, "b": d.Dir("b6", nil), "e": e})
	add(sinceCase{name: "a file moved to a directory walked before its old one", old: root1, root: root6,
		drop: []string{"f1", "c1", "c2"}, want: []string{"a6", "b6", "h", "root6"}})

	// g, one raw block, grows into a file of chunks: its first chunk is
	// the old block, known from the old directory.
	g2 := d.File("g2", g, d.Raw("gtail", " and more"))
	root7 := d.Dir("root7", ents{"a": d.Dir("a7", ents{"f": f1, "g": g2}), "b": b, "e": e})
	add(sinceCase{name: "a one-block file grown into chunks", old: root1, root: root7,
		drop: []string{"f1", "b", "g"}, want: []string{"a7", "g2", "gtail", "root7"}})

	// Identity CIDs carry their data in the link: nothing to send.
	t := d.File("t", d.Identity("in"), d.Identity("line"))
	root8 := d.Dir("root8", ents{"a": a1, "b": b, "e": e, "tiny": d.Identity("tiny"), "t": t})
	add(sinceCase{name: "identity CIDs are not sent", old: root1, root: root8,
		drop: []string{"a1", "b"}, want: []string{"root8", "t"}})

	// The old root is not in the store: nothing is known of it, so
	// everything under root is sent.
	add(sinceCase{name: "old root missing: everything", old: root1, root: root2, drop: []string{"root1"},
		want: []string{"a2", "b", "c1", "c3", "e", "f2", "g", "h", "root2"}})

	add(sinceCase{name: "a new block missing is an error", old: root1, root: root2, drop: []string{"c3"},
		err: d.Block("c3").Cid().String()})
	return d, cases
}

// TestWalkSince: what a node holding the old root is sent to hold the
// new one: each block under root and not under old, once, without
// reading what the two share at the same place.
func TestWalkSince(t *testing.T) {
	d, cases := sinceCases()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := storeOf(t, d, tc.drop...)
			old := cid.Undef
			if tc.old != nil {
				old = tc.old.Cid
			}
			var sent []cid.Cid
			err := WalkSince(t.Context(), s.Blockstore(), old, tc.root.Cid, func(c cid.Cid, data []byte) error {
				if slices.ContainsFunc(sent, c.Equals) {
					t.Errorf("%s visited twice", d.Name(c))
				}
				if !slices.Equal(data, d.Block(d.Name(c)).RawData()) {
					t.Errorf("%s visited with other bytes", d.Name(c))
				}
				sent = append(sent, c)
				return nil
			})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Names(sent); !slices.Equal(got, tc.want) {
				t.Errorf("sent %v, want %v", got, tc.want)
			}
		})
	}
}

// TestWalkSinceCancelled: a cancelled walk stops with the context's error.
func TestWalkSinceCancelled(t *testing.T) {
	d, cases := sinceCases()
	s := storeOf(t, d)
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	err := WalkSince(ctx, s.Blockstore(), cid.Undef, cases[0].root.Cid, func(cid.Cid, []byte) error {
		n++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Fatalf("after cancelling at the first block: %d visited, %v", n, err)
	}
}

// TestDeltaFile: sync --car's file is a CARv1 rooted at the new root
// holding exactly the blocks WalkSince sends (all of them without an old
// root), each hashing to its CID; a block missing leaves no file.
func TestDeltaFile(t *testing.T) {
	d, cases := sinceCases()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := storeOf(t, d, tc.drop...)
			old := cid.Undef
			if tc.old != nil {
				old = tc.old.Cid
			}
			path := filepath.Join(t.TempDir(), "delta.car")
			st, err := DeltaFile(t.Context(), s.Blockstore(), old, tc.root.Cid, path)
			if tc.err != "" {
				if _, serr := os.Lstat(path); err == nil || !strings.Contains(err.Error(), tc.err) || serr == nil {
					t.Fatalf("error %v, want one naming %s and no file (%v)", err, tc.err, serr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, bytes := readCAR(t, d, path, tc.root.Cid)
			if names := d.Names(got); !slices.Equal(names, tc.want) {
				t.Errorf("CAR holds %v, want %v", names, tc.want)
			}
			if st.Blocks != int64(len(got)) || st.Bytes != bytes {
				t.Errorf("stats %+v, the CAR holds %d blocks of %d bytes", st, len(got), bytes)
			}
		})
	}
}

// readCAR reads the CARv1 at path, checks it is rooted at root and that
// each block hashes to its CID, and returns the blocks' CIDs and bytes.
func readCAR(t *testing.T, d *dagtest.DAG, path string, root cid.Cid) ([]cid.Cid, int64) {
	t.Helper()
	car := cartest.Read(t, path)
	if car.Version != 1 || len(car.Roots) != 1 || !car.Roots[0].Equals(root) {
		t.Fatalf("CARv%d with roots %v, want CARv1 rooted at %s", car.Version, car.Roots, root)
	}
	var got []cid.Cid
	var bytes int64
	for _, b := range car.Blocks {
		if c, err := b.Cid().Prefix().Sum(b.RawData()); err != nil || !c.Equals(b.Cid()) {
			t.Errorf("%s holds bytes that hash to %s", d.Name(b.Cid()), c)
		}
		got = append(got, b.Cid())
		bytes += int64(len(b.RawData()))
	}
	return got, bytes
}

func TestCounterparts(t *testing.T) {
	c := func(s string) cid.Cid { return mdag.NewRawNode([]byte(s)).Cid() }
	link := func(name, data string) *ipld.Link { return &ipld.Link{Name: name, Cid: c(data)} }
	for _, tc := range []struct {
		name          string
		olinks, links []*ipld.Link
		want          []cid.Cid
	}{
		{name: "entries by name, in any order",
			olinks: []*ipld.Link{link("a", "1"), link("b", "2")},
			links:  []*ipld.Link{link("b", "3"), link("c", "4"), link("a", "5")},
			want:   []cid.Cid{c("2"), cid.Undef, c("1")}},
		{name: "chunks by index",
			olinks: []*ipld.Link{link("", "1"), link("", "2")},
			links:  []*ipld.Link{link("", "3"), link("", "4"), link("", "5")},
			want:   []cid.Cid{c("1"), c("2"), cid.Undef}},
		{name: "a chunk never pairs with an entry",
			olinks: []*ipld.Link{link("a", "1")},
			links:  []*ipld.Link{link("", "2")},
			want:   []cid.Cid{cid.Undef}},
		{name: "no old node", links: []*ipld.Link{link("a", "1")}, want: []cid.Cid{cid.Undef}},
	} {
		if got := Counterparts(tc.olinks, tc.links); !slices.EqualFunc(got, tc.want, cid.Cid.Equals) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
