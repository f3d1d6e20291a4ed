package dagtest

import (
	"testing"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
)

// TestTsize: each link records its block's size plus its children's
// Tsizes, as kubo does, and a file node the sizes of its chunks' content;
// directories list their entries sorted by name.
func TestTsize(t *testing.T) {
	d := New()
	c1, c2 := d.Raw("c1", "hello "), d.Leaf("c2", "world")
	empty := d.Raw("empty", "")
	f := d.File("f", c1, c2, d.Identity("!"))
	root := d.Dir("root", Entries{"z": empty, "a": f})

	want := map[string]uint64{"c1": 6, "empty": 0}
	want["c2"] = uint64(len(d.Block("c2").RawData()))
	want["f"] = uint64(len(d.Block("f").RawData())) + want["c1"] + want["c2"] + 1
	want["root"] = uint64(len(d.Block("root").RawData())) + want["f"] + want["empty"]
	for name, l := range map[string]uint64{"c1": c1.Size, "c2": c2.Size, "empty": empty.Size, "f": f.Size, "root": root.Size} {
		if l != want[name] {
			t.Errorf("Tsize of %s: %d, want %d", name, l, want[name])
		}
	}

	fn, err := mdag.DecodeProtobuf(d.Block("f").RawData())
	if err != nil {
		t.Fatal(err)
	}
	fsn, err := ft.FSNodeFromBytes(fn.Data())
	if err != nil {
		t.Fatal(err)
	}
	if fsn.FileSize() != 12 || fsn.NumChildren() != 3 {
		t.Errorf("file node: size %d in %d chunks, want 12 in 3", fsn.FileSize(), fsn.NumChildren())
	}

	rn, err := mdag.DecodeProtobuf(d.Block("root").RawData())
	if err != nil {
		t.Fatal(err)
	}
	if l := rn.Links(); len(l) != 2 || l[0].Name != "a" || l[1].Name != "z" || !l[0].Cid.Equals(f.Cid) {
		t.Errorf("directory links %v, want a then z", l)
	}
	if root.Cid.Version() != 1 || root.Cid.Prefix().Codec != cid.DagProtobuf || c1.Cid.Prefix().Codec != cid.Raw {
		t.Errorf("CIDs %s, %s: want CIDv1 dag-pb and raw", root.Cid, c1.Cid)
	}
	if got := d.Names([]cid.Cid{root.Cid, c1.Cid}); len(got) != 2 || got[0] != "c1" || got[1] != "root" {
		t.Errorf("Names: %v", got)
	}
}
