package pull

import (
	"bytes"
	"testing"
	"time"

	ft "github.com/ipfs/boxo/ipld/unixfs"
	unixfspb "github.com/ipfs/boxo/ipld/unixfs/pb"
)

// TestWithoutFileData: a file's UnixFS message loses its Data and nothing
// else boxo reads from it; any other message is left whole.
func TestWithoutFileData(t *testing.T) {
	msg := func(typ unixfspb.Data_DataType, data []byte) []byte {
		n := ft.NewFSNode(typ)
		n.SetData(data)
		n.SetMode(0o640)
		n.SetModTime(time.Unix(1700000000, 5))
		b, err := n.GetBytes()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	file := msg(ft.TFile, []byte("the file's bytes"))
	raw := msg(ft.TRaw, []byte("trickle leaf"))
	cases := []struct {
		name     string
		in       []byte
		stripped bool
	}{
		{"file", file, true},
		{"raw", raw, true},
		{"file without data", msg(ft.TFile, nil), false},
		{"symlink", msg(ft.TSymlink, []byte("target")), false},
		{"directory", msg(ft.TDirectory, nil), false},
		{"Data twice", append(bytes.Clone(file), 0x12, 1, 'x'), false},
		{"not protobuf", []byte{0xff, 0xff, 0xff}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := bytes.Clone(c.in)
			out := withoutFileData(in)
			if !bytes.Equal(in, c.in) {
				t.Fatal("the message was modified in place")
			}
			if !c.stripped {
				if !bytes.Equal(out, c.in) {
					t.Errorf("changed: %x, want %x", out, c.in)
				}
				return
			}
			want, err := ft.FSNodeFromBytes(c.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ft.FSNodeFromBytes(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Data()) != 0 || got.Type() != want.Type() || got.FileSize() != want.FileSize() ||
				got.Mode() != want.Mode() || !got.ModTime().Equal(want.ModTime()) {
				t.Errorf("got %v %d bytes %v %v data %q, want %v %d bytes %v %v", got.Type(), got.FileSize(), got.Mode(), got.ModTime(), got.Data(),
					want.Type(), want.FileSize(), want.Mode(), want.ModTime())
			}
		})
	}
}
