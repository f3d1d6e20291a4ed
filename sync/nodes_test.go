package sync

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"testing"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

// A basic directory is the block boxo's ProtoNode encodes for the same
// links and metadata, with the same Tsize, whatever the CID settings;
// links out of name order are sorted as ProtoNode sorts them.
func TestBasicDirMatchesBoxo(t *testing.T) {
	ctx := context.Background()
	var links []diff.Link
	for i := range 40 {
		h, _ := mh.Sum([]byte{byte(i)}, mh.SHA2_256, -1)
		c := cid.NewCidV1(cid.Raw, h)
		if i%3 == 0 {
			c = cid.NewCidV0(h)
		}
		links = append(links, diff.Link{Name: fmt.Sprintf("entry-%02d\xff%s", i, bytes.Repeat([]byte("é"), i%9)), Cid: c, Tsize: uint64(i) << (i % 40)})
	}
	shuffled := append([]diff.Link{links[5], links[1]}, links[6:]...)
	for _, tc := range []struct {
		name    string
		profile string
		links   []diff.Link
		mode    fs.FileMode
		mtime   time.Time
	}{
		{"v1 with metadata", profile.V1_2025, links, 0o2755 | fs.ModeDir, time.Unix(1_700_000_000, 42)},
		{"v1 mtime only", profile.V1_2025, links[:7], 0, time.Unix(-5, 0)},
		{"v0 without metadata", profile.V0_2015, links, 0, time.Time{}},
		{"empty", profile.V1_2025, nil, 0o755 | fs.ModeDir, time.Time{}},
		{"out of order", profile.V1_2025, shuffled, 0o700 | fs.ModeDir, time.Unix(1, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := profile.New(tc.profile, profile.Overrides{})
			if err != nil {
				t.Fatal(err)
			}
			want := mdag.NodeWithData(ft.FolderPBDataWithStat(tc.mode, tc.mtime))
			if err := want.SetCidBuilder(p.CidBuilder()); err != nil {
				t.Fatal(err)
			}
			for _, l := range tc.links {
				if err := want.AddRawLink(l.Name, &ipld.Link{Cid: l.Cid, Size: l.Tsize}); err != nil {
					t.Fatal(err)
				}
			}
			dag := &recordDAG{nodes: map[cid.Cid][]byte{}}
			got, err := dirNode(ctx, dag, p, tc.mode, tc.mtime, tc.links, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !got.cid.Equals(want.Cid()) || !bytes.Equal(got.raw, want.RawData()) || !bytes.Equal(dag.nodes[got.cid], want.RawData()) {
				t.Fatalf("block %s, boxo %s", got.cid, want.Cid())
			}
			if got.tsize != mustSize(t, want) {
				t.Fatalf("Tsize %d, boxo %d", got.tsize, mustSize(t, want))
			}
		})
	}
}

// BenchmarkBasicDir encodes a 1,000-entry basic directory with mode and
// mtime, as an import does for every directory it builds.
func BenchmarkBasicDir(b *testing.B) {
	leaf, _ := cid.Decode("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
	links := make([]diff.Link, 1000)
	for i := range links {
		links[i] = diff.Link{Name: fmt.Sprintf("file-%04d.txt", i), Cid: leaf, Tsize: uint64(1000 + i)}
	}
	b.ReportAllocs()
	for b.Loop() {
		basicDir(0o755|fs.ModeDir, time.Unix(1_700_000_000, 5), links)
	}
}
