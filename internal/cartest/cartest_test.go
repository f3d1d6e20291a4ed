package cartest

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
)

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []string
	}{
		{name: "one block", data: []string{"a"}},
		{name: "three blocks", data: []string{"a", "bb", "ccc"}},
	} {
		var bs []blocks.Block
		for _, d := range tc.data {
			bs = append(bs, blocks.NewBlock([]byte(d)))
		}
		path := filepath.Join(t.TempDir(), "x.car")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		car, err := storage.NewWritable(struct{ io.Writer }{f}, []cid.Cid{bs[0].Cid()}, carv2.WriteAsCarV1(true))
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, b := range bs {
			if err := car.Put(context.Background(), b.Cid().KeyString(), b.RawData()); err != nil {
				t.Fatal(err)
			}
			want = append(want, b.Cid().String())
		}
		if err := car.Finalize(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		c := Read(t, path)
		if c.Version != 1 || len(c.Roots) != 1 || !c.Roots[0].Equals(bs[0].Cid()) || !slices.Equal(c.CIDs(), want) {
			t.Errorf("%s: CARv%d roots %v blocks %v, want CARv1 rooted at %s with %v", tc.name, c.Version, c.Roots, c.CIDs(), bs[0].Cid(), want)
		}
	}
}
