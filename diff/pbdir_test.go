package diff

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	dstest "github.com/ipfs/boxo/ipld/merkledag/test"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/internal/dagpb"
)

// TestBasicDirMatchesBoxo: the own dag-pb reader gives what boxo's decoder
// gives (dirOf) for basic directories of every shape, and declines (so
// boxo decides) what is not a basic directory in canonical form.
func TestBasicDirMatchesBoxo(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	v0 := cid.Prefix{Version: 0, Codec: cid.DagProtobuf, MhType: mh.SHA2_256, MhLength: -1}
	v1raw := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}
	v1pb := cid.Prefix{Version: 1, Codec: cid.DagProtobuf, MhType: mh.BLAKE2B_MIN + 31, MhLength: -1}
	id := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.IDENTITY, MhLength: -1}
	names := []string{"", "a", "b", "A", "debian", "file with spaces", "ünïcödé", "\x01ctl", string(bytes.Repeat([]byte("n"), 255)), ".hidden", "z\xff"}
	dirs := []struct {
		name  string
		n     int
		mode  fs.FileMode
		mtime time.Time
	}{
		{"empty, no metadata", 0, 0, time.Time{}},
		{"one entry", 1, 0o755, time.Unix(1700000000, 5).UTC()},
		{"many entries", 300, 0o775 | fs.ModeSetgid, time.Unix(-5, 0).UTC()},
		{"all odd names", len(names), 0o777 | fs.ModeSticky, time.Unix(4102444800, 999999999).UTC()},
	}
	for _, tc := range dirs {
		t.Run(tc.name, func(t *testing.T) {
			nd := mdag.NodeWithData(ft.FolderPBDataWithStat(tc.mode, tc.mtime))
			for i := range tc.n {
				name := fmt.Sprintf("entry-%04d-%x", rng.IntN(1e6), i)
				if tc.n == len(names) {
					name = names[i]
				}
				p := []cid.Prefix{v0, v1raw, v1pb, id}[i%4]
				c, err := p.Sum([]byte(name + fmt.Sprint(i)))
				if err != nil {
					t.Fatal(err)
				}
				if err := nd.AddRawLink(name, &ipld.Link{Cid: c, Size: uint64(rng.IntN(3)) * uint64(rng.Int64N(1<<40))}); err != nil {
					t.Fatal(err)
				}
			}
			got, ok := basicDir(nd.RawData())
			if !ok {
				t.Fatal("declined a basic directory")
			}
			want, err := Tree{DAG: dstest.Mock()}.dirOf(context.Background(), nd, false)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %+v\nboxo %+v", got, want)
			}
		})
	}

	// Stored fields boxo's FSNode reads in its own way: mode bits above
	// the permissions, a mode of 0, nanoseconds of 0 or out of range.
	for _, u := range []dagpb.UnixFS{
		{Mode: 0x1000, Has: dagpb.HasMode},
		{Mode: 0x3000 | 0o755, Has: dagpb.HasMode},
		{Mode: 0, Has: dagpb.HasMode},
		{MtimeSeconds: 1, Has: dagpb.HasMtime | dagpb.HasMtimeNanos},
		{MtimeSeconds: 1, MtimeNanos: 1e9, Has: dagpb.HasMtime | dagpb.HasMtimeNanos},
		{MtimeSeconds: -3, MtimeNanos: 7, Has: dagpb.HasMtime | dagpb.HasMtimeNanos},
	} {
		u.Type = ft.TDirectory
		raw := dagpb.AppendUnixFS(nil, &u)
		got, ok := basicDir(raw)
		if !ok {
			t.Fatalf("% x: declined a basic directory", raw)
		}
		nd, err := mdag.DecodeProtobuf(raw)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Tree{DAG: dstest.Mock()}.dirOf(context.Background(), nd, false)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("% x: got  %+v\nboxo %+v", raw, got, want)
		}
	}

	declined := map[string][]byte{
		"file node":             mustRaw(t, mdag.NodeWithData(ft.FilePBData([]byte("x"), 1))),
		"HAMT root":             mustRaw(t, mdag.NodeWithData(hamtData(t))),
		"no Data":               {0x12, 0x02, 0x0a, 0x00},
		"Data before Links":     append(append([]byte{}, pbData()...), 0x12, 0x24, 0x0a, 0x22, 0x12, 0x20),
		"truncated":             {0x0a, 0x05, 0x08},
		"unknown field":         append([]byte{0x1a, 0x00}, pbData()...),
		"link without hash":     append([]byte{0x12, 0x03, 0x12, 0x01, 'a'}, pbData()...),
		"link Name before Hash": append([]byte{0x12, 0x03, 0x12, 0x01, 'a', 0x0a, 0x00}, pbData()...),
		"bad CID":               append([]byte{0x12, 0x03, 0x0a, 0x01, 0x99}, pbData()...),
		"duplicate names":       dupNames(t),
	}
	for name, raw := range declined {
		if d, ok := basicDir(raw); ok {
			t.Errorf("%s: accepted: %+v", name, d)
		}
	}
}

func mustRaw(t *testing.T, nd *mdag.ProtoNode) []byte {
	t.Helper()
	return nd.RawData()
}

func pbData() []byte {
	d := ft.FolderPBData()
	return append([]byte{0x0a, byte(len(d))}, d...)
}

func hamtData(t *testing.T) []byte {
	t.Helper()
	fsn := ft.NewFSNode(ft.THAMTShard)
	b, err := fsn.GetBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dupNames(t *testing.T) []byte {
	t.Helper()
	c, _ := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}.Sum([]byte("x"))
	nd := mdag.NodeWithData(ft.FolderPBData())
	for range 2 {
		if err := nd.AddRawLink("same", &ipld.Link{Cid: c}); err != nil {
			t.Fatal(err)
		}
	}
	return nd.RawData()
}

// BenchmarkBasicDirDecode lists a 1,000-entry basic directory with mode
// and mtime from its block, as a re-sync does for every directory.
func BenchmarkBasicDirDecode(b *testing.B) {
	leaf, _ := cid.Decode("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
	nd := mdag.NodeWithData(ft.FolderPBDataWithStat(0o755|fs.ModeDir, time.Unix(1_700_000_000, 5)))
	for i := range 1000 {
		if err := nd.AddRawLink(fmt.Sprintf("file-%04d.txt", i), &ipld.Link{Cid: leaf, Size: uint64(1000 + i)}); err != nil {
			b.Fatal(err)
		}
	}
	raw := nd.RawData()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := basicDir(raw); !ok {
			b.Fatal("declined")
		}
	}
}
