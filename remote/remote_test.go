package remote

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/gateway"
	"github.com/ipfs-sync/ipfs-sync/internal/dagtest"
)

// repo is a repository holding bs.
func repo(t *testing.T, bs ...blocks.Block) *blockstore.Store {
	t.Helper()
	s, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	w := s.NewWriter(false)
	for _, b := range bs {
		if err := w.Put(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// served is a trustless gateway (ipfs-sync's own) over a repository of
// bs; asked counts the requests per CID.
func served(t *testing.T, bs ...blocks.Block) (*Gateway, *gosync.Map) {
	t.Helper()
	h, err := gateway.Handler(repo(t, bs...).Blockstore(), false)
	if err != nil {
		t.Fatal(err)
	}
	asked := &gosync.Map{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := asked.LoadOrStore(strings.TrimPrefix(r.URL.Path, "/ipfs/"), new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g, err := NewGateway(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return g, asked
}

func TestGatewayBlock(t *testing.T) {
	d := dagtest.New()
	d.Raw("a", "alpha")
	d.Leaf("b", "beta")
	absent := dagtest.New()
	absent.Raw("c", "gamma")
	g, _ := served(t, d.Blocks()...)
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("not the block asked for"))
	}))
	defer liar.Close()
	lg, err := NewGateway(liar.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		src  Source
		c    cid.Cid
		want error // nil: the block's bytes
	}{
		{"raw", g, d.Block("a").Cid(), nil},
		{"dag-pb", g, d.Block("b").Cid(), nil},
		{"absent", g, absent.Block("c").Cid(), ipld.ErrNotFound{}},
		{"lying gateway", lg, d.Block("a").Cid(), ErrBadBlock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(repo(t).Blockstore(), tc.src, nil).Get(t.Context(), tc.c)
			switch {
			case tc.want == nil && err != nil:
				t.Fatal(err)
			case tc.want == nil && !b.Cid().Equals(tc.c):
				t.Fatalf("got %s, want %s", b.Cid(), tc.c)
			case tc.want != nil && !errors.Is(err, tc.want) && !(ipld.IsNotFound(tc.want) && ipld.IsNotFound(err)):
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewGatewayRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://host/", "http://"} {
		if _, err := NewGateway(u); err == nil {
			t.Errorf("NewGateway(%q) accepted", u)
		}
	}
}

// TestBlockstoreLayers reads through a local store that holds part of a
// DAG: what it holds is never fetched, the rest is fetched once however
// many ask (at once, or later: kept in the store), and every fetched block
// is kept.
func TestBlockstoreLayers(t *testing.T) {
	d := dagtest.New()
	d.Dir("root", dagtest.Entries{"x": d.File("x", d.Leaf("x1", "one"), d.Leaf("x2", "two")), "y": d.Raw("y", "why")})
	g, asked := served(t, d.Blocks()...)
	local := repo(t, d.Block("y"))
	var mu gosync.Mutex
	kept := map[cid.Cid]string{}
	w := local.NewWriter(false)
	bs := New(local.Blockstore(), g, func(ctx context.Context, c cid.Cid, data []byte) error {
		mu.Lock()
		kept[c] = string(data)
		mu.Unlock()
		return w.PutBlock(ctx, c, data) // as sync keeps them: read here from then on
	})
	var wg gosync.WaitGroup
	for range 8 {
		for _, name := range []string{"root", "x", "y"} {
			wg.Go(func() {
				b, err := bs.Get(t.Context(), d.Block(name).Cid())
				if err != nil {
					t.Error(err)
					return
				}
				if string(b.RawData()) != string(d.Block(name).RawData()) {
					t.Errorf("%s: wrong bytes", name)
				}
			})
		}
	}
	wg.Wait()
	for _, name := range []string{"root", "x"} {
		c := d.Block(name).Cid()
		n, _ := asked.Load(c.String())
		if n == nil || n.(*atomic.Int64).Load() != 1 {
			t.Errorf("%s asked for %v times, want once", name, n)
		}
		if kept[c] != string(d.Block(name).RawData()) {
			t.Errorf("%s not kept", name)
		}
	}
	for _, name := range []string{"y", "x1", "x2"} {
		if _, ok := asked.Load(d.Block(name).Cid().String()); ok {
			t.Errorf("%s fetched: it is held locally, or never asked for", name)
		}
	}
	if n, err := bs.GetSize(t.Context(), d.Block("x").Cid()); err != nil || n != len(d.Block("x").RawData()) {
		t.Errorf("GetSize(x) = %d, %v", n, err)
	}
}
