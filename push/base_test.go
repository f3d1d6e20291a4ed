package push

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/gateway"
	"github.com/ipfs-sync/ipfs-sync/internal/dagtest"
	"github.com/ipfs-sync/ipfs-sync/remote"
)

// TestPushBase: with no push recorded, a Base the node holds (pinned
// recursively) is what the delta is against, its blocks read from the
// target where the repository lacks them, and its pin moves (a Base that
// is the root itself is left pinned: kubo would walk the whole DAG to pin
// it again, as is the MFS path that holds it); a Base the node does not
// hold means a full push.
func TestPushBase(t *testing.T) {
	d := dagtest.New()
	shared := d.Dir("shared", dagtest.Entries{"f": d.Raw("f", "unchanged file")})
	v1 := d.Dir("root1", dagtest.Entries{"a": shared, "b": d.Raw("b1", "b, first")})
	v2 := d.Dir("root2", dagtest.Entries{"a": shared, "b": d.Raw("b2", "b, second")})
	// The target holds v1 (served by ipfs-sync's own gateway); the
	// repository only v2, as a sync from an empty one leaves it.
	held := putAll(t, d, "root1", "b1", "shared", "f")
	h, err := gateway.Handler(held.Blockstore(), false)
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(h)
	defer gw.Close()
	src, err := remote.NewGateway(gw.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		base     cid.Cid
		pinLs    func(http.ResponseWriter)
		previous string
		sent     []string
		cmds     []string
	}{
		{"base pinned", v1.Cid, answerWith(200, `{"Keys":{"`+v1.Cid.String()+`":{"Type":"recursive"}}}`), "root1", []string{"b2", "root2"}, []string{"pin/ls", "dag/import", "pin/update", "files/stat", "files/rm", "files/cp"}},
		{"base pinned, the root itself: nothing sent, the pin kept", v2.Cid, answerWith(200, `{"Keys":{"`+v2.Cid.String()+`":{"Type":"recursive"}}}`), "root2", nil, []string{"pin/ls", "dag/import", "files/stat"}},
		{"base not pinned", v1.Cid, cmdsError(500, "path '"+v1.Cid.String()+"' is not pinned"), "", []string{"b2", "f", "root2", "shared"}, []string{"pin/ls", "dag/import", "pin/add", "files/stat", "files/rm", "files/cp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := putAll(t, d, "root2", "b2", "shared", "f")
			s := newRPCServer(t)
			s.set("pin/ls", tc.pinLs)
			s.set("files/stat", answerWith(200, `{"Hash":"`+tc.base.String()+`"}`))
			res, err := Push(t.Context(), store, s.kubo(), v2.Cid, Options{Name: "mirror", Base: tc.base, Remote: src, ToFiles: "/mirror"})
			if err != nil {
				t.Fatal(err)
			}
			prev := ""
			if res.Previous != nil {
				prev = d.Name(cid.MustParse(*res.Previous))
			}
			sent := d.Names(carBlocks(t, s.call("dag/import").car, v2.Cid))
			if prev != tc.previous || !slices.Equal(sent, tc.sent) {
				t.Errorf("previous %q, sent %v; want %q and %v", prev, sent, tc.previous, tc.sent)
			}
			if got := s.cmds(); !slices.Equal(got, tc.cmds) {
				t.Errorf("calls %v, want %v", got, tc.cmds)
			}
		})
	}
}

// putAll is a repository holding the blocks of d named.
func putAll(t *testing.T, d *dagtest.DAG, names ...string) *blockstore.Store {
	t.Helper()
	s, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	w := s.NewWriter(false)
	for _, n := range names {
		if err := w.Put(t.Context(), d.Block(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}
