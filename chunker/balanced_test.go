package chunker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	dstest "github.com/ipfs/boxo/ipld/merkledag/test"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/metadata"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

// blockMap is a DAG that takes raw blocks, as the store's writer does, so
// the importer uses its own builder; it copies what it is lent.
type blockMap struct {
	ipld.DAGService
	mu     sync.Mutex
	blocks map[cid.Cid][]byte
}

func newBlockMap() *blockMap {
	return &blockMap{DAGService: dstest.Mock(), blocks: map[cid.Cid][]byte{}}
}

func (m *blockMap) PutBlock(_ context.Context, c cid.Cid, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blocks[c] = bytes.Clone(data)
	return nil
}

func (m *blockMap) Add(ctx context.Context, nd ipld.Node) error {
	return m.PutBlock(ctx, nd.Cid(), nd.RawData())
}

// reserveMap is a blockMap that also lends places for blocks, as the
// store's writer does (BlockReserver), and refuses every third request, as
// the writer does for a block that would straddle two stage buffers.
type reserveMap struct {
	*blockMap
	t    *testing.T
	n    int
	lent bool // a place is out: the importer gives it back before the next
}

func (r *reserveMap) ReserveBlock(_ context.Context, size, mhLen int) (Reservation, error) {
	if r.lent {
		r.t.Fatal("a second place asked for before the first was given back")
	}
	if r.n++; r.n%3 == 0 {
		return nil, nil
	}
	r.lent = true
	buf := make([]byte, size)
	return mapPlace{buf, func(c cid.Cid) (bool, error) {
		r.lent = false
		if !c.Defined() {
			return false, nil
		}
		if len(c.Hash()) != mhLen {
			r.t.Fatalf("block %s: multihash of %d bytes, %d reserved", c, len(c.Hash()), mhLen)
		}
		r.mu.Lock()
		_, had := r.blocks[c]
		r.mu.Unlock()
		return !had, r.PutBlock(context.Background(), c, buf)
	}}, nil
}

// mapPlace is a place reserveMap lends: its bytes and what commits them.
type mapPlace struct {
	buf    []byte
	commit func(cid.Cid) (bool, error)
}

func (p mapPlace) Bytes() []byte                  { return p.buf }
func (p mapPlace) Commit(c cid.Cid) (bool, error) { return p.commit(c) }

// plainDAG stores into a blockMap but takes only nodes, so the importer
// uses boxo's builder.
type plainDAG struct {
	ipld.DAGService
	m *blockMap
}

func (p plainDAG) Add(ctx context.Context, nd ipld.Node) error { return p.m.Add(ctx, nd) }

func (p plainDAG) AddMany(ctx context.Context, nds []ipld.Node) error {
	for _, nd := range nds {
		if err := p.Add(ctx, nd); err != nil {
			return err
		}
	}
	return nil
}

func mustProfile(t testing.TB, name string, o profile.Overrides) profile.Profile {
	t.Helper()
	p, err := profile.New(name, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ptr[T any](v T) *T { return &v }

// TestFastBalancedMatchesBoxo: the importer's own leaf builder gives the
// root, Tsize and blocks of boxo's balanced builder, for sizes around every
// chunk and tree-level boundary, each profile and leaf kind, and metadata
// with and without nanoseconds, extra mode bits and none at all; with
// leaves put, and with leaves built in places lent for them.
func TestFastBalancedMatchesBoxo(t *testing.T) {
	profiles := []struct {
		name string
		p    profile.Profile
	}{
		{"v1-2025 with metadata (dag-pb leaves)", mustProfile(t, profile.V1_2025, profile.Overrides{RawLeaves: ptr(false)})},
		{"v1-2025 no metadata (raw leaves)", mustProfile(t, profile.V1_2025, profile.Overrides{Metadata: ptr("none")})},
		{"v0-2015 with metadata", mustProfile(t, profile.V0_2015, profile.Overrides{})},
		{"v0-2015 mtime only", mustProfile(t, profile.V0_2015, profile.Overrides{Metadata: ptr("mtime")})},
		{"small chunks, width 3, dag-pb leaves", mustProfile(t, profile.V1_2025, profile.Overrides{RawLeaves: ptr(false), Chunker: ptr("size-1000"), MaxFileLinks: ptr(3)})},
		{"small chunks, width 2, raw leaves", mustProfile(t, profile.V1_2025, profile.Overrides{Metadata: ptr("none"), Chunker: ptr("size-512"), MaxFileLinks: ptr(2)})},
		{"inlined small leaves, blake2b", mustProfile(t, profile.V1_2025, profile.Overrides{Metadata: ptr("none"), Chunker: ptr("size-100"), Inline: ptr(true), InlineLimit: ptr(100), Hash: ptr("blake2b-256"), MaxFileLinks: ptr(4)})},
		{"cidv0 odd chunk", mustProfile(t, profile.V0_2015, profile.Overrides{Chunker: ptr("size-4097"), MaxFileLinks: ptr(5)})},
	}
	stats := []metadata.Stat{
		{Type: metadata.File, Mode: 0o644, MTime: time.Unix(1700000000, 123456789).UTC()},
		{Type: metadata.File, Mode: 0o4755 | fs.ModeSetuid | fs.ModeSticky, MTime: time.Unix(-1, 0).UTC()},
		{Type: metadata.File, Mode: 0, MTime: time.Time{}},
		{Type: metadata.File, Mode: 0o600, MTime: time.Unix(4102444800, 1).UTC()},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, pc := range profiles {
		t.Run(pc.name, func(t *testing.T) {
			cs := pc.p.ChunkSize()
			w := int64(pc.p.FileDAGWidth)
			sizes := []int64{0, 1, cs - 1, cs, cs + 1, 2 * cs, w * cs, w*cs + 1, 3*cs + 17}
			if cs*w*w < 4<<20 {
				sizes = append(sizes, w*w*cs, w*w*cs+1, w*w*w*cs+cs/2)
			}
			for range 3 {
				sizes = append(sizes, rng.Int64N(5*cs+1))
			}
			for i, size := range sizes {
				if size > 8<<20 {
					// A level boundary of the real profiles (a GiB); the
					// narrow profiles cross theirs in a few KiB.
					continue
				}
				st := stats[i%len(stats)]
				st.Size = size
				data := make([]byte, size)
				_, _ = rand.NewChaCha8([32]byte{byte(i)}).Read(data)
				fast, slow := newBlockMap(), newBlockMap()
				var dag ipld.DAGService = fast
				if i%2 == 1 {
					dag = &reserveMap{blockMap: fast, t: t}
				}
				fi := &Importer{Profile: pc.p, DAG: dag}
				if _, ok := fi.fastLayout(); !ok {
					t.Fatal("the fast builder is not used")
				}
				bi := &Importer{Profile: pc.p, DAG: plainDAG{DAGService: dstest.Mock(), m: slow}}
				if _, ok := bi.fastLayout(); ok {
					t.Fatal("boxo's builder is not used")
				}
				gotC, gotT, err := fi.layout(t.Context(), bytes.NewReader(data), st, Source{})
				if err != nil {
					t.Fatal(err)
				}
				wantC, wantT, err := bi.layout(t.Context(), bytes.NewReader(data), st, Source{})
				if err != nil {
					t.Fatal(err)
				}
				if !gotC.Equals(wantC) || gotT != wantT {
					t.Fatalf("size %d, %+v: root %s Tsize %d, boxo %s Tsize %d", size, st, gotC, gotT, wantC, wantT)
				}
				if got, want := keys(fast.blocks), keys(slow.blocks); got != want {
					t.Fatalf("size %d: blocks differ:\n%s\nboxo:\n%s", size, got, want)
				}
				for c, b := range slow.blocks {
					if !bytes.Equal(fast.blocks[c], b) {
						t.Fatalf("size %d: block %s differs", size, c)
					}
				}
				if size > 0 {
					checkData(t, fast, gotC, data)
				}
			}
		})
	}
}

func keys(m map[cid.Cid][]byte) string {
	var s []string
	for c := range m {
		s = append(s, c.String())
	}
	sort.Strings(s)
	return fmt.Sprint(s)
}

// checkData reads the file back through its leaves, in order.
func checkData(t *testing.T, m *blockMap, root cid.Cid, want []byte) {
	t.Helper()
	var got []byte
	var walk func(c cid.Cid)
	walk = func(c cid.Cid) {
		raw, ok := m.blocks[c]
		if c.Prefix().MhType == mh.IDENTITY {
			d, err := mh.Decode(c.Hash())
			if err != nil {
				t.Fatal(err)
			}
			raw, ok = d.Digest, true
		}
		if !ok {
			t.Fatalf("block %s not stored", c)
		}
		b, _ := blocks.NewBlockWithCid(raw, c)
		if c.Prefix().Codec == cid.Raw {
			got = append(got, raw...)
			return
		}
		nd, err := mdag.DecodeProtobufBlock(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(nd.Links()) == 0 {
			fsn, err := ft.FSNodeFromBytes(nd.(*mdag.ProtoNode).Data())
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fsn.Data()...)
		}
		for _, l := range nd.Links() {
			walk(l.Cid)
		}
	}
	walk(root)
	if !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes, want %d", len(got), len(want))
	}
}

// A file shorter than its stat said (cut while read) is ErrChanged, and a
// place lent for its leaf is given back.
func TestFastBalancedShortFile(t *testing.T) {
	p := mustProfile(t, profile.V1_2025, profile.Overrides{Chunker: ptr("size-1000")})
	for _, dag := range []ipld.DAGService{newBlockMap(), &reserveMap{blockMap: newBlockMap(), t: t}} {
		im := &Importer{Profile: p, DAG: dag}
		st := metadata.Stat{Type: metadata.File, Size: 2500, Mode: 0o644}
		_, _, err := im.layout(t.Context(), bytes.NewReader(make([]byte, 1800)), st, Source{})
		if !errors.Is(err, ErrChanged) {
			t.Fatalf("%T: %v, want ErrChanged", dag, err)
		}
		if r, ok := dag.(*reserveMap); ok && r.lent {
			t.Fatal("the place lent for the cut leaf was not given back")
		}
	}
}

// Once a leaf built in a lent place turns out to be stored already, the
// rest of the file is put as usual: a file imported again asks for one
// place, not one per leaf (each would be left unused).
func TestFastBalancedStopsReservingOnStoredLeaf(t *testing.T) {
	p := mustProfile(t, profile.V1_2025, profile.Overrides{Chunker: ptr("size-1000")})
	r := &reserveMap{blockMap: newBlockMap(), t: t}
	im := &Importer{Profile: p, DAG: r}
	data := make([]byte, 20500)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(data)
	st := metadata.Stat{Type: metadata.File, Size: int64(len(data)), Mode: 0o644}
	first, _, err := im.layout(t.Context(), bytes.NewReader(data), st, Source{})
	if err != nil {
		t.Fatal(err)
	}
	asked := r.n
	again, _, err := im.layout(t.Context(), bytes.NewReader(data), st, Source{})
	if err != nil || !again.Equals(first) {
		t.Fatalf("again: %s %v, first %s", again, err, first)
	}
	if n := r.n - asked; n != 1 {
		t.Fatalf("the second import asked for %d places, want 1", n)
	}
}

// discardDAG takes blocks and nodes and keeps none: what is left to
// measure is the builder (reading, framing, hashing).
type discardDAG struct{ ipld.DAGService }

func (discardDAG) PutBlock(context.Context, cid.Cid, []byte) error { return nil }
func (discardDAG) Add(context.Context, ipld.Node) error            { return nil }

// BenchmarkFastBalanced runs the own leaf builder where its framing
// weighs most: a small file that is one dag-pb leaf carrying mode and
// mtime (most files of a mirror), and a file of many small dag-pb leaves.
func BenchmarkFastBalanced(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
		o    profile.Overrides
	}{
		{"one 2KiB leaf with metadata", 2 << 10, profile.Overrides{RawLeaves: ptr(false)}},
		{"1MiB in 1000-byte leaves", 1 << 20, profile.Overrides{RawLeaves: ptr(false), Chunker: ptr("size-1000")}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			im := &Importer{Profile: mustProfile(b, profile.V1_2025, bc.o), DAG: discardDAG{}}
			data := make([]byte, bc.size)
			_, _ = rand.NewChaCha8([32]byte{9}).Read(data)
			st := metadata.Stat{Type: metadata.File, Size: int64(len(data)), Mode: 0o644, MTime: time.Unix(1_700_000_000, 5)}
			r := bytes.NewReader(data)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(data)
				if _, _, err := im.layout(b.Context(), r, st, Source{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
