package carimport

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bstore "github.com/ipfs/boxo/blockstore"
	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	carv2 "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/export"
)

// source is a repository holding two versions of a small tree: v1 (a and
// b/c) and v2 (a changed, b/c kept, d added).
type source struct {
	store  *blockstore.Store
	v1, v2 cid.Cid
}

func newSource(t *testing.T) source {
	t.Helper()
	s := openStore(t)
	ctx := context.Background()
	w := s.NewWriter(false)
	put := func(b blocks.Block) cid.Cid {
		t.Helper()
		if err := w.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
		return b.Cid()
	}
	dir := func(entries map[string]cid.Cid) cid.Cid {
		t.Helper()
		nd := mdag.NodeWithData(ft.FolderPBData())
		nd.SetCidBuilder(cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256})
		for _, name := range sortedKeys(entries) {
			if err := nd.AddRawLink(name, &ipld.Link{Cid: entries[name]}); err != nil {
				t.Fatal(err)
			}
		}
		return put(nd)
	}
	c := put(raw(t, "c, the same in both"))
	b := dir(map[string]cid.Cid{"c": c})
	v1 := dir(map[string]cid.Cid{"a": put(raw(t, "a, version 1")), "b": b})
	v2 := dir(map[string]cid.Cid{"a": put(raw(t, "a, version 2")), "b": b, "d": put(raw(t, "d, new in 2"))})
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return source{s, v1, v2}
}

func sortedKeys(m map[string]cid.Cid) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func raw(t *testing.T, data string) blocks.Block {
	t.Helper()
	c, err := cid.V1Builder{Codec: cid.Raw, MhType: mh.SHA2_256}.Sum([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	b, err := blocks.NewBlockWithCid([]byte(data), c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openStore(t *testing.T) *blockstore.Store {
	t.Helper()
	s, err := blockstore.Open(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// carOf writes the blocks under root not under old (all of them for
// cid.Undef) as a CAR file, as sync --car and export do.
func (src source) carOf(t *testing.T, old, root cid.Cid) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), root.String()+".car")
	if _, err := export.DeltaFile(context.Background(), src.store.Blockstore(), old, root, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeCAR writes blocks, as given, under roots: CARs export would never
// write.
func writeCAR(t *testing.T, roots []cid.Cid, bs ...blocks.Block) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := storage.NewWritable(&buf, roots, carv2.WriteAsCarV1(true))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if err := w.Put(context.Background(), b.Cid().KeyString(), b.RawData()); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "hand.car")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// corrupt is the CAR at path with one byte of the block data want changed.
func corrupt(t *testing.T, path, want string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte(want))
	if i < 0 {
		t.Fatalf("%q is not in %s", want, path)
	}
	data[i] ^= 1
	out := filepath.Join(t.TempDir(), "corrupt.car")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRun(t *testing.T) {
	src := newSource(t)
	full1, full2 := src.carOf(t, cid.Undef, src.v1), src.carOf(t, cid.Undef, src.v2)
	delta := src.carOf(t, src.v1, src.v2)
	v2 := filepath.Join(t.TempDir(), "v2.car")
	if err := carv2.WrapV1File(full1, v2); err != nil {
		t.Fatal(err)
	}
	notCAR := filepath.Join(t.TempDir(), "text.car")
	if err := os.WriteFile(notCAR, []byte("not a CAR\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cbor := raw(t, "stand-in")
	cborRoot := cid.NewCidV1(cid.DagCBOR, cbor.Cid().Hash())
	cborBlock, err := blocks.NewBlockWithCid(cbor.RawData(), cborRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		before  []string // imported first, under the name "m"
		cars    []string
		refName string
		history []cid.Cid // the ref's roots after, oldest first
		err     string    // part of the error, "" for none
		has     []cid.Cid // in the store after
	}{
		{name: "full CAR", cars: []string{full1}, refName: "m", history: []cid.Cid{src.v1}},
		{name: "CARv2", cars: []string{v2}, refName: "m", history: []cid.Cid{src.v1}},
		{name: "no name: blocks only", cars: []string{full1}, has: []cid.Cid{src.v1}},
		{name: "delta on the previous root", before: []string{full1}, cars: []string{delta}, refName: "m", history: []cid.Cid{src.v1, src.v2}},
		{name: "full then delta in one run", cars: []string{full1, delta}, refName: "m", history: []cid.Cid{src.v1, src.v2}},
		{name: "delta without what it builds on", cars: []string{delta}, refName: "m", err: "lacks 1 block(s)", has: []cid.Cid{src.v2}},
		{name: "roots recorded in the order given", cars: []string{delta, full1}, refName: "m", history: []cid.Cid{src.v2, src.v1}},
		{name: "the same root again", before: []string{full2}, cars: []string{full2}, refName: "m", history: []cid.Cid{src.v2, src.v2}},
		{name: "a corrupt block", before: []string{full1}, cars: []string{corrupt(t, delta, "d, new in 2")}, refName: "m", err: "does not match its CID", history: []cid.Cid{src.v1}},
		{name: "a corrupt second CAR", cars: []string{full1, corrupt(t, delta, "a, version 2")}, refName: "m", err: "does not match its CID"},
		{name: "two roots with a name", cars: []string{writeCAR(t, []cid.Cid{src.v1, src.v2})}, refName: "m", err: "has 2 roots"},
		{name: "two roots without", cars: []string{writeCAR(t, []cid.Cid{src.v1, src.v2}, cbor)}, has: []cid.Cid{cbor.Cid()}},
		{name: "dag-cbor under a ref", cars: []string{writeCAR(t, []cid.Cid{cborRoot}, cborBlock)}, refName: "m", err: "UnixFS DAGs"},
		{name: "dag-cbor, no ref", cars: []string{writeCAR(t, []cid.Cid{cborRoot}, cborBlock)}, has: []cid.Cid{cborRoot}},
		{name: "not a CAR", cars: []string{notCAR}, err: "not a CAR"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t)
			if len(tt.before) > 0 {
				if _, err := Run(ctx, s, tt.before, Options{Name: "m"}); err != nil {
					t.Fatal(err)
				}
			}
			sum, err := Run(ctx, s, tt.cars, Options{Name: tt.refName})
			switch {
			case tt.err == "" && err != nil:
				t.Fatal(err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("error %v, want one saying %q", err, tt.err)
			}
			ref, _, rerr := s.Ref("m")
			if rerr != nil {
				t.Fatal(rerr)
			}
			var got []cid.Cid
			for _, v := range ref.History {
				got = append(got, cid.MustParse(v.Root))
			}
			if !slices.EqualFunc(got, tt.history, cid.Cid.Equals) {
				t.Errorf("ref history %v, want %v", got, tt.history)
			}
			if err == nil && tt.refName != "" && sum.Root != tt.history[len(tt.history)-1].String() {
				t.Errorf("summary root %s, want the ref's %s", sum.Root, tt.history[len(tt.history)-1])
			}
			for _, c := range tt.has {
				if has, _ := s.Blockstore().Has(ctx, c); !has {
					t.Errorf("block %s not stored", c)
				}
			}
		})
	}
}

// TestIncompleteListsMissing: the error names every block the DAG lacks,
// and no more than that.
func TestIncompleteListsMissing(t *testing.T) {
	src := newSource(t)
	s := openStore(t)
	// v2's root block alone: a, b and d are missing; b's child c is not
	// reached, as b is not there to say it exists.
	root, err := src.store.Blockstore().Get(context.Background(), src.v2)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), s, []string{writeCAR(t, []cid.Cid{src.v2}, root)}, Options{Name: "m"})
	var inc *IncompleteError
	if !errors.As(err, &inc) {
		t.Fatalf("error %v, want an IncompleteError", err)
	}
	if len(inc.Missing) != 3 || !inc.Root.Equals(src.v2) {
		t.Errorf("missing %v under %s, want a, b and d under %s", inc.Missing, inc.Root, src.v2)
	}
	for _, c := range inc.Missing {
		if !strings.Contains(err.Error(), c.String()) {
			t.Errorf("the error does not name %s: %v", c, err)
		}
	}
}

// TestSummary: the counts of one import, new blocks apart from those the
// store held.
func TestSummary(t *testing.T) {
	src := newSource(t)
	s := openStore(t)
	full1, full2 := src.carOf(t, cid.Undef, src.v1), src.carOf(t, cid.Undef, src.v2)
	sum, err := Run(context.Background(), s, []string{full1, full2}, Options{Name: "m"})
	if err != nil {
		t.Fatal(err)
	}
	// v1: root, a1, b, c (4); v2: root, a2, b, c, d (5), of which b and c
	// came with v1.
	want := []CAR{
		{Path: full1, Roots: []string{src.v1.String()}, Blocks: 4, BlocksNew: 4},
		{Path: full2, Roots: []string{src.v2.String()}, Blocks: 5, BlocksNew: 3},
	}
	for i, car := range sum.CARs {
		car.Bytes, car.BytesNew = 0, 0
		if !slices.Equal(car.Roots, want[i].Roots) || car.Path != want[i].Path || car.Blocks != want[i].Blocks || car.BlocksNew != want[i].BlocksNew {
			t.Errorf("CAR %d: %+v, want %+v", i, car, want[i])
		}
	}
	if sum.Blocks != 9 || sum.BlocksNew != 7 || sum.Root != src.v2.String() || sum.Name != "m" {
		t.Errorf("summary %+v", sum)
	}
}

// readCounter is a store's blockstore that counts the blocks read whole.
type readCounter struct {
	bstore.Blockstore
	read map[cid.Cid]int
}

func (r readCounter) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	r.read[c]++
	return r.Blockstore.Get(ctx, c)
}

// TestMissingSkipsShared: checked beside a complete old root, a subtree
// the new root shares with it at the same place is not read; without the
// old root it is.
func TestMissingSkipsShared(t *testing.T) {
	src := newSource(t)
	ctx := context.Background()
	nd, err := src.store.Blockstore().Get(ctx, src.v1)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := mdag.DecodeProtobuf(nd.RawData())
	if err != nil {
		t.Fatal(err)
	}
	shared, _, err := pb.ResolveLink([]string{"b"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		old   cid.Cid
		reads int
	}{
		{"beside v1", src.v1, 0},
		{"alone", cid.Undef, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bs := readCounter{src.store.Blockstore(), map[cid.Cid]int{}}
			missing, err := Missing(ctx, bs, tt.old, src.v2)
			if err != nil || len(missing) != 0 {
				t.Fatalf("missing %v, %v; want none", missing, err)
			}
			if got := bs.read[shared.Cid]; got != tt.reads {
				t.Errorf("the shared directory b was read %d times, want %d", got, tt.reads)
			}
		})
	}
}
