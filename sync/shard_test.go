package sync

import (
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

	"github.com/ipfs-sync/ipfs-sync/profile"
)

// recordDAG keeps every node added to it, by CID.
type recordDAG struct {
	ipld.DAGService
	mu    gosync.Mutex
	nodes map[cid.Cid][]byte
}

func (d *recordDAG) Add(_ context.Context, nd ipld.Node) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nodes[nd.Cid()] = nd.RawData()
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
			links := make([]Link, tc.n)
			for i := range links {
				name := fmt.Sprintf("pkg-%d-%s", i, strings.Repeat("x", rng.IntN(20)))
				links[i] = Link{Name: name, Cid: leaf, Tsize: uint64(rng.IntN(1 << 30))}
			}
			slices.SortFunc(links, func(a, b Link) int { return strings.Compare(a.Name, b.Name) })

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
			if !gotRoot.Cid().Equals(wantRoot.Cid()) {
				t.Fatalf("root %s, boxo %s", gotRoot.Cid(), wantRoot.Cid())
			}
			if len(got.nodes) != len(want.nodes) {
				t.Fatalf("%d shard blocks, boxo %d", len(got.nodes), len(want.nodes))
			}
			for c := range want.nodes {
				if _, ok := got.nodes[c]; !ok {
					t.Fatalf("boxo's shard %s not built", c)
				}
			}
		})
	}
}
