package push

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	carv2 "github.com/ipld/go-car/v2"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/internal/dagtest"
)

// TestPushRecord: what is sent is decided by the root last recorded for
// the API and name, and the record moves only once kubo has pinned the
// root, so a push that failed sends the same delta when run again; a
// recorded root the repository no longer holds means a full push.
func TestPushRecord(t *testing.T) {
	d := dagtest.New()
	shared := d.Dir("shared", dagtest.Entries{"f": d.Raw("f", "unchanged file")})
	v1 := d.Dir("root1", dagtest.Entries{"a": shared, "b": d.Raw("b1", "b, first")})
	v2 := d.Dir("root2", dagtest.Entries{"a": shared, "b": d.Raw("b2", "b, second")})
	store, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	w := store.NewWriter(false)
	for _, b := range d.Blocks() {
		if err := w.Put(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := newRPCServer(t)
	k := s.kubo()

	steps := []struct {
		name     string
		root     *ipld.Link
		failPin  bool
		drop     string   // block removed from the repository first
		previous string   // Result.Previous, by block name ("": none)
		sent     []string // blocks in the CAR
		recorded *ipld.Link
	}{
		{"first push: everything", v1, false, "", "", []string{"b1", "f", "root1", "shared"}, v1},
		{"a failed pin records nothing", v2, true, "", "root1", []string{"b2", "root2"}, v1},
		{"run again: the same delta", v2, false, "", "root1", []string{"b2", "root2"}, v2},
		{"the same root again: nothing new", v2, false, "", "root2", nil, v2},
		{"the recorded root gone from the repository: everything", v1, false, "root2", "", []string{"b1", "f", "root1", "shared"}, v1},
	}
	for _, st := range steps {
		if st.drop != "" {
			if err := store.Blockstore().DeleteBlock(t.Context(), d.Block(st.drop).Cid()); err != nil {
				t.Fatal(err)
			}
		}
		s.set("pin/update", nil)
		if st.failPin {
			s.set("pin/update", cmdsError(500, "context canceled"))
		}
		s.forget()
		res, err := Push(t.Context(), store, k, st.root.Cid, Options{Name: "mirror"})
		if st.failPin != (err != nil) || err != nil && !strings.Contains(err.Error(), "pin "+st.root.Cid.String()) {
			t.Fatalf("%s: Push: %v", st.name, err)
		}
		prev := ""
		if res.Previous != nil {
			prev = d.Name(cid.MustParse(*res.Previous))
		}
		sent := carBlocks(t, s.call("dag/import").car, st.root.Cid)
		if got := d.Names(sent); prev != st.previous || !slices.Equal(got, st.sent) || res.Blocks != int64(len(sent)) {
			t.Errorf("%s: previous %q, sent %v (%d counted); want %q and %v", st.name, prev, got, res.Blocks, st.previous, st.sent)
		}
		if rec, err := store.Pushed(k.URL(), "mirror"); err != nil || !rec.Equals(st.recorded.Cid) {
			t.Errorf("%s: recorded %s (%v), want %s", st.name, d.Name(rec), err, d.Name(st.recorded.Cid))
		}
	}
}

// carBlocks is the CIDs of the blocks of car, a CARv1 rooted at root.
func carBlocks(t *testing.T, car []byte, root cid.Cid) []cid.Cid {
	t.Helper()
	br, err := carv2.NewBlockReader(bytes.NewReader(car))
	if err != nil {
		t.Fatal(err)
	}
	if br.Version != 1 || len(br.Roots) != 1 || !br.Roots[0].Equals(root) {
		t.Fatalf("CARv%d with roots %v, want a CARv1 rooted at %s", br.Version, br.Roots, root)
	}
	var out []cid.Cid
	for {
		b, err := br.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Cid())
	}
}
