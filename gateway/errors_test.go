package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
)

// testStore is a repository holding a directory whose "here" entry is
// stored and whose "gone" entry is not (a block lost to a gc or a disk
// fault); it returns the store, the directory's CID and the stored entry's.
func testStore(t *testing.T) (s *blockstore.Store, dir, here cid.Cid) {
	t.Helper()
	ctx := context.Background()
	s, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	hereB, gone := rawBlock(t, "stored"), rawBlock(t, "not stored")
	nd := mdag.NodeWithData(ft.FolderPBData())
	nd.SetCidBuilder(cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256})
	for name, b := range map[string]blocks.Block{"here": hereB, "gone": gone} {
		if err := nd.AddRawLink(name, &ipld.Link{Cid: b.Cid(), Size: uint64(len(b.RawData()))}); err != nil {
			t.Fatal(err)
		}
	}
	w := s.NewWriter(false)
	for _, b := range []blocks.Block{hereB, nd} {
		if err := w.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return s, nd.Cid(), hereB.Cid()
}

func rawBlock(t *testing.T, data string) blocks.Block {
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

// TestErrorsAreNeverImmutable: a root the store does not hold is a 404
// before any byte of a response; no error answer carries an immutable
// cache header (a CDN in front would keep it for a year); a CAR that
// fails part way does not end as a complete response.
func TestErrorsAreNeverImmutable(t *testing.T) {
	s, dir, here := testStore(t)
	h, err := Handler(s.Blockstore(), false)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	absent := rawBlock(t, "never stored").Cid()
	for _, tt := range []struct {
		name, path string
		status     int // 0: must not complete
	}{
		{"absent root as a CAR", "/ipfs/" + absent.String() + "?format=car", http.StatusNotFound},
		{"absent root as a raw block", "/ipfs/" + absent.String() + "?format=raw", http.StatusNotFound},
		{"path under an absent root", "/ipfs/" + absent.String() + "/a/b?format=car", http.StatusNotFound},
		{"absent directory root", "/ipfs/" + cid.NewCidV1(cid.DagProtobuf, absent.Hash()).String() + "?format=car", http.StatusNotFound},
		{"not a CID", "/ipfs/not-a-cid?format=car", http.StatusBadRequest},
		{"a CAR missing a block under its root", "/ipfs/" + dir.String() + "?format=car", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				if tt.status == 0 {
					return // the connection was cut: no response to keep
				}
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, rerr := io.ReadAll(resp.Body)
			cc := resp.Header.Get("Cache-Control")
			if tt.status == 0 {
				if rerr == nil {
					t.Fatalf("a CAR that failed part way ended as a complete %d response (%d bytes, Cache-Control %q)", resp.StatusCode, len(body), cc)
				}
				return
			}
			if rerr != nil {
				t.Fatal(rerr)
			}
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d; body %q", resp.StatusCode, tt.status, body)
			}
			if strings.Contains(cc, "immutable") || strings.Contains(cc, "max-age") && !strings.Contains(cc, "max-age=0") {
				t.Errorf("error answer %d has Cache-Control %q", resp.StatusCode, cc)
			}
		})
	}
	// The stored blocks are served as before.
	resp, err := http.Get(srv.URL + "/ipfs/" + here.String() + "?format=raw")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "stored" {
		t.Errorf("a stored block: %d %q", resp.StatusCode, body)
	}
}
