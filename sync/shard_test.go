package sync

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/unixfs/hamt"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

// recordDAG keeps every node added to it, by CID.
type recordDAG struct {
	ipld.DAGService
	mu    gosync.Mutex
	nodes map[cid.Cid][]byte
}

func (d *recordDAG) Add(_ context.Context, nd ipld.Node) error {
	return d.PutBlock(context.Background(), nd.Cid(), nd.RawData())
}

func (d *recordDAG) PutBlock(_ context.Context, c cid.Cid, data []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nodes[c] = slices.Clone(data)
	return nil
}

// buildShard gives the HAMT boxo's hamt.Shard gives for the same entries
// set one by one, every shard block the same, across fanouts, sizes (one
// level, several, chains of single-slot shards from near collisions),
// metadata and CID settings.
func TestBuildShardMatchesBoxo(t *testing.T) {
	ctx := context.Background()
	leaf, err := cid.Decode("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		profile string
		fanout  int
		n       int
		meta    bool
	}{
		{profile.V1_2025, 256, 1, true},
		{profile.V1_2025, 256, 2, false},
		{profile.V1_2025, 256, 300, true},
		{profile.V1_2025, 256, 5000, true},
		{profile.V0_2015, 256, 3000, false},
		{profile.V1_2025, 8, 700, true},
		{profile.V1_2025, 16, 2000, false},
		{profile.V1_2025, 32, 1500, true},
		{profile.V1_2025, 512, 4000, true},
		{profile.V1_2025, 1024, 6000, false},
	} {
		t.Run(fmt.Sprintf("%s/fanout=%d/n=%d/meta=%v", tc.profile, tc.fanout, tc.n, tc.meta), func(t *testing.T) {
			fanout := tc.fanout
			p, err := profile.New(tc.profile, profile.Overrides{MaxHAMTFanout: &fanout})
			if err != nil {
				t.Fatal(err)
			}
			var mode fs.FileMode
			var mtime time.Time
			if tc.meta {
				mode, mtime = 0o755|fs.ModeDir, time.Unix(1_700_000_000, 123)
			}
			links := make([]diff.Link, tc.n)
			for i := range links {
				name := fmt.Sprintf("pkg-%d-%s", i, strings.Repeat("x", rng.IntN(20)))
				links[i] = diff.Link{Name: name, Cid: leaf, Tsize: uint64(rng.IntN(1 << 30))}
			}
			slices.SortFunc(links, func(a, b diff.Link) int { return strings.Compare(a.Name, b.Name) })

			want := &recordDAG{nodes: map[cid.Cid][]byte{}}
			s, err := hamt.NewShard(want, fanout)
			if err != nil {
				t.Fatal(err)
			}
			s.SetCidBuilder(p.CidBuilder())
			s.SetStat(mode, mtime)
			for _, l := range links {
				if err := s.SetLink(ctx, l.Name, &ipld.Link{Name: l.Name, Cid: l.Cid, Size: l.Tsize}); err != nil {
					t.Fatal(err)
				}
			}
			wantRoot, err := s.Node()
			if err != nil {
				t.Fatal(err)
			}

			got := &recordDAG{nodes: map[cid.Cid][]byte{}}
			gotRoot, err := buildShard(ctx, got, p, mode, mtime, links)
			if err != nil {
				t.Fatal(err)
			}
			if !gotRoot.cid.Equals(wantRoot.Cid()) {
				t.Fatalf("root %s, boxo %s", gotRoot.cid, wantRoot.Cid())
			}
			if len(got.nodes) != len(want.nodes) {
				t.Fatalf("%d shard blocks, boxo %d", len(got.nodes), len(want.nodes))
			}
			for c, raw := range want.nodes {
				if !bytes.Equal(got.nodes[c], raw) {
					t.Fatalf("boxo's shard %s not built", c)
				}
			}
			if gotRoot.tsize != mustSize(t, wantRoot) {
				t.Fatalf("root Tsize %d, boxo %d", gotRoot.tsize, mustSize(t, wantRoot))
			}
		})
	}
}

// BenchmarkBuildShard builds the HAMT of a 20,000-entry directory (the
// size of CRAN's src/contrib in the small preset) into the real store.
func BenchmarkBuildShard(b *testing.B) {
	leaf, _ := cid.Decode("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
	links := make([]diff.Link, 20000)
	for i := range links {
		links[i] = diff.Link{Name: fmt.Sprintf("package%05d_1.%d.tar.gz", i, i%7), Cid: leaf, Tsize: uint64(1000 + i)}
	}
	slices.SortFunc(links, func(a, b diff.Link) int { return strings.Compare(a.Name, b.Name) })
	p, err := profile.New(profile.V1_2025, profile.Overrides{})
	if err != nil {
		b.Fatal(err)
	}
	store, err := blockstore.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	w := store.NewWriter(false)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := buildShard(context.Background(), w, p, 0o755|fs.ModeDir, time.Unix(1_700_000_000, 0), links); err != nil {
			b.Fatal(err)
		}
	}
}

func mustSize(t *testing.T, nd ipld.Node) uint64 {
	t.Helper()
	s, err := nd.Size()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
