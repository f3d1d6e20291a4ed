package pull

import (
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs-sync/ipfs-sync/gateway"
)

// TestConnectionsReused: a pull keeps its connections to a gateway for
// the next request, also after a CAR it stopped reading once it had the
// blocks it wanted: a tree of many small directories, each fetched as one
// CAR, opens about as many connections as it fetches at once, not one per
// CAR.
func TestConnectionsReused(t *testing.T) {
	g := newDAGStore(t)
	kids := map[string]*spec{}
	for i := range 60 {
		kids[string(rune('a'+i%26))+string(rune('a'+i/26))] = dir(0o755, t0, map[string]*spec{
			"f": &spec{kind: 'f', data: randBytes(uint64(i), 3000), mode: 0o644, mtime: t0},
		})
	}
	tree := dir(0o755, t0, kids)
	root := g.build(tree)
	h, err := gateway.Handler(g.bs, false)
	if err != nil {
		t.Fatal(err)
	}
	var conns, cars atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.URL.Query().Get("format") == "car" {
			cars.Add(1)
			// The CAR's blocks go out now, its end a moment later, as
			// on a real link where they are not in one packet.
			w.(http.Flusher).Flush()
			time.Sleep(2 * time.Millisecond)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	const jobs = 4
	dest := filepath.Join(t.TempDir(), "dest")
	mustPull(t, gateways(t, srv.URL), root, dest, func(o *Options) { o.Jobs = jobs })
	checkTree(t, dest, tree)
	t.Logf("%d CARs over %d connections", cars.Load(), conns.Load())
	if cars.Load() < 30 {
		t.Fatalf("%d CARs: the tree was not fetched a directory at a time", cars.Load())
	}
	// One each for what is fetched at once (CARs and blocks), a few more
	// for drains that a loaded machine made late; a connection per CAR
	// is what closing them unread gave.
	if conns.Load() > cars.Load()/2 {
		t.Errorf("%d connections for %d CARs fetched %d at a time", conns.Load(), cars.Load(), jobs)
	}
}
