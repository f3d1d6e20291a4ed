package dagpb

import (
	"bytes"
	"io/fs"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	pb "github.com/ipfs/boxo/ipld/unixfs/pb"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/proto"
)

// The fuzz tests' seed corpus (addSeeds, and testdata/fuzz if a run left
// a failing input there) runs in every plain `go test`, so `make test`
// checks both directions on these nodes; `go test -fuzz FuzzX` searches.

// node is a dag-pb node with a UnixFS message, drawn from fuzz input.
type node struct {
	u      UnixFS
	noData bool // the node has no Data field at all
	links  []link
}

type link struct {
	name  string
	c     cid.Cid
	tsize uint64
}

// nodeFrom draws a node from the fuzz arguments: has's low six bits are
// the Has bits, 1<<6 gives Data, 1<<7 drops the Data field; names are
// the links' names, separated by '/'.
func nodeFrom(typ, has uint8, data []byte, filesize uint64, blocksizes []byte, hashType, fanout uint64, mode uint32, secs int64, nanos uint32, names string, tsize uint64) node {
	n := node{u: UnixFS{
		Type: pb.Data_DataType(typ % 6), Filesize: filesize, HashType: hashType, Fanout: fanout,
		Mode: mode, MtimeSeconds: secs, MtimeNanos: nanos, Has: Has(has) & (HasMtimeNanos<<1 - 1),
	}}
	if has&(1<<6) != 0 {
		n.u.Data = append([]byte{}, data...)
	}
	n.noData = has&(1<<7) != 0
	for _, b := range blocksizes {
		n.u.Blocksizes = append(n.u.Blocksizes, uint64(b)<<(b%57))
	}
	// A field not present is zero, as a decoder leaves it.
	clearAbsent(&n.u)
	if names == "" {
		return n
	}
	prefixes := []cid.Prefix{
		{Version: 0, Codec: cid.DagProtobuf, MhType: mh.SHA2_256, MhLength: -1},
		{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1},
		{Version: 1, Codec: cid.DagProtobuf, MhType: mh.IDENTITY, MhLength: -1},
	}
	for i, name := range strings.Split(names, "/") {
		c, err := prefixes[i%len(prefixes)].Sum([]byte(name))
		if err != nil {
			panic(err)
		}
		// boxo writes a Tsize over MaxInt64 as 0; no DAG is that big.
		n.links = append(n.links, link{name: name, c: c, tsize: tsize >> (i % 64) & math.MaxInt64})
	}
	// Links go in name order, as ProtoNode sorts them and callers pass them.
	slices.SortStableFunc(n.links, func(a, b link) int { return strings.Compare(a.name, b.name) })
	return n
}

func clearAbsent(u *UnixFS) {
	if u.Has&HasMtime == 0 {
		u.Has &^= HasMtimeNanos
		u.MtimeSeconds = 0
	}
	for _, f := range []struct {
		h Has
		v any
	}{{HasFilesize, &u.Filesize}, {HasHashType, &u.HashType}, {HasFanout, &u.Fanout}, {HasMtimeNanos, &u.MtimeNanos}} {
		if u.Has&f.h == 0 {
			reflect.ValueOf(f.v).Elem().SetZero()
		}
	}
	if u.Has&HasMode == 0 {
		u.Mode = 0
	}
	if len(u.Blocksizes) == 0 {
		u.Blocksizes = nil
	}
}

// toPB is u as boxo's FSNode holds it.
func toPB(u *UnixFS) *pb.Data {
	d := &pb.Data{Type: new(u.Type), Data: u.Data, Blocksizes: u.Blocksizes}
	if u.Has&HasFilesize != 0 {
		d.Filesize = new(u.Filesize)
	}
	if u.Has&HasHashType != 0 {
		d.HashType = new(u.HashType)
	}
	if u.Has&HasFanout != 0 {
		d.Fanout = new(u.Fanout)
	}
	if u.Has&HasMode != 0 {
		d.Mode = new(u.Mode)
	}
	if u.Has&HasMtime != 0 {
		d.Mtime = &pb.IPFSTimestamp{Seconds: new(u.MtimeSeconds)}
		if u.Has&HasMtimeNanos != 0 {
			d.Mtime.Nanos = new(u.MtimeNanos)
		}
	}
	return d
}

// fromPB is what boxo's decoder read, field by field.
func fromPB(d *pb.Data) UnixFS {
	u := UnixFS{Type: d.GetType(), Data: d.Data, Blocksizes: d.Blocksizes, Filesize: d.GetFilesize(), HashType: d.GetHashType(), Fanout: d.GetFanout(), Mode: d.GetMode()}
	for _, f := range []struct {
		set bool
		h   Has
	}{{d.Filesize != nil, HasFilesize}, {d.HashType != nil, HasHashType}, {d.Fanout != nil, HasFanout}, {d.Mode != nil, HasMode}, {d.Mtime != nil, HasMtime}} {
		if f.set {
			u.Has |= f.h
		}
	}
	if d.Mtime != nil {
		u.MtimeSeconds = d.Mtime.GetSeconds()
		if d.Mtime.Nanos != nil {
			u.MtimeNanos, u.Has = *d.Mtime.Nanos, u.Has|HasMtimeNanos
		}
	}
	clearAbsent(&u)
	return u
}

// boxoNode is n built with boxo's ProtoNode and the UnixFS message
// marshalled by protobuf, as FSNode.GetBytes does.
func boxoNode(t *testing.T, n node) *mdag.ProtoNode {
	t.Helper()
	nd := new(mdag.ProtoNode)
	if !n.noData {
		data, err := proto.Marshal(toPB(&n.u))
		if err != nil {
			t.Fatal(err)
		}
		nd.SetData(data)
	}
	for _, l := range n.links {
		if err := nd.AddRawLink(l.name, &ipld.Link{Cid: l.c, Size: l.tsize}); err != nil {
			t.Fatal(err)
		}
	}
	return nd
}

// encode is n encoded here; a link's name is split in two (AppendLink's
// prefix and name) where it has a '-'.
func encode(n node) []byte {
	var raw []byte
	for _, l := range n.links {
		prefix, name, ok := strings.Cut(l.name, "-")
		if ok {
			prefix += "-"
		} else {
			prefix, name = "", l.name
		}
		raw = AppendLink(raw, l.c, []byte(prefix), name, l.tsize)
	}
	if !n.noData {
		raw = AppendUnixFS(raw, &n.u)
	}
	return raw
}

// decode reads raw here, as n's links and Data (nil when absent).
func decode(raw []byte) ([]link, []byte, error) {
	var links []link
	data, err := DecodeNode(raw, func(name string, c cid.Cid, tsize uint64) {
		links = append(links, link{name, c, tsize})
	})
	return links, data, err
}

func boxoLinks(nd *mdag.ProtoNode) []link {
	var links []link
	for _, l := range nd.Links() {
		links = append(links, link{l.Name, l.Cid, l.Size})
	}
	return links
}

// seed is one set of fuzz arguments (nodeFrom).
type seed struct {
	typ, has         uint8
	data             []byte
	filesize         uint64
	blocksizes       []byte
	hashType, fanout uint64
	mode             uint32
	secs             int64
	nanos            uint32
	names            string
	tsize            uint64
}

func (s seed) node() node {
	return nodeFrom(s.typ, s.has, s.data, s.filesize, s.blocksizes, s.hashType, s.fanout, s.mode, s.secs, s.nanos, s.names, s.tsize)
}

// seeds are directories, files, leaves, shards and symlinks as kubo
// writes them, and odd corners.
var seeds = []seed{
	{typ: 1, names: "a/b/c d/ünï/\xff", tsize: 1234}, // a directory
	{typ: 1, has: uint8(HasMode | HasMtime | HasMtimeNanos), mode: 0o755, secs: 1_700_000_000, nanos: 5, names: "x/y", tsize: 1 << 40},
	{typ: 2, has: 1<<6 | uint8(HasFilesize), data: []byte("hello"), filesize: 5},                                      // a leaf
	{typ: 2, has: 1<<6 | uint8(HasFilesize|HasMode|HasMtime), data: []byte("x"), filesize: 1, mode: 0o4644, secs: -1}, // before 1970
	{typ: 2, has: uint8(HasFilesize), filesize: 1 << 20, blocksizes: []byte{0, 18, 200}, names: "/", tsize: 262158},   // a file's inner node
	{typ: 5, has: 1<<6 | uint8(HasHashType|HasFanout), data: []byte{0xff, 1}, hashType: 0x22, fanout: 256, names: "00a/1Fb/FF", tsize: 99},
	{typ: 4, has: 1<<6 | uint8(HasMtime), data: []byte("../target"), secs: 4102444800}, // a symlink
	{has: 0xff &^ (1 << 7), data: []byte{}, filesize: math.MaxUint64, blocksizes: []byte{255}, hashType: math.MaxUint64, fanout: math.MaxUint64, mode: math.MaxUint32, secs: math.MinInt64, nanos: math.MaxUint32},
	{typ: 3, has: 1 << 7, names: "only-links", tsize: math.MaxUint64}, // no Data field
}

func addSeeds(f *testing.F) {
	for _, s := range seeds {
		f.Add(s.typ, s.has, s.data, s.filesize, s.blocksizes, s.hashType, s.fanout, s.mode, s.secs, s.nanos, s.names, s.tsize)
	}
}

// FuzzDecodeBoxo: a node built by boxo (ProtoNode, and the UnixFS message
// marshalled as FSNode marshals it) is read here with the same links,
// Data and UnixFS fields, and the mode and mtime boxo's FSNode reads.
func FuzzDecodeBoxo(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, typ, has uint8, data []byte, filesize uint64, blocksizes []byte, hashType, fanout uint64, mode uint32, secs int64, nanos uint32, names string, tsize uint64) {
		n := nodeFrom(typ, has, data, filesize, blocksizes, hashType, fanout, mode, secs, nanos, names, tsize)
		nd := boxoNode(t, n)
		links, gotData, err := decode(nd.RawData())
		if err != nil {
			t.Fatalf("boxo's node % x: %v", nd.RawData(), err)
		}
		if want := boxoLinks(nd); !reflect.DeepEqual(links, want) {
			t.Fatalf("links %v, boxo %v", links, want)
		}
		if (gotData == nil) != n.noData || !bytes.Equal(gotData, nd.Data()) {
			t.Fatalf("Data % x, boxo % x", gotData, nd.Data())
		}
		if n.noData {
			return
		}
		u, err := DecodeUnixFS(gotData)
		if err != nil {
			t.Fatalf("boxo's UnixFS % x: %v", gotData, err)
		}
		if !reflect.DeepEqual(u, n.u) {
			t.Fatalf("UnixFS\n%+v\nboxo\n%+v", u, n.u)
		}
		fsn, err := ft.FSNodeFromBytes(gotData)
		if err != nil {
			t.Fatal(err)
		}
		if u.FileMode() != fsn.Mode() || !u.ModTime().Equal(fsn.ModTime()) || u.ModTime().IsZero() != fsn.ModTime().IsZero() {
			t.Fatalf("mode %v mtime %v, boxo %v %v", u.FileMode(), u.ModTime(), fsn.Mode(), fsn.ModTime())
		}
	})
}

// FuzzEncodeBoxo: a node encoded here is read by boxo with the same
// links and UnixFS fields, and boxo encodes what it read to the same
// bytes; a leaf's head, data and tail are the same bytes; SetMode and
// SetModTime store what FSNode's do.
func FuzzEncodeBoxo(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, typ, has uint8, data []byte, filesize uint64, blocksizes []byte, hashType, fanout uint64, mode uint32, secs int64, nanos uint32, names string, tsize uint64) {
		n := nodeFrom(typ, has, data, filesize, blocksizes, hashType, fanout, mode, secs, nanos, names, tsize)
		raw := encode(n)
		nd, err := mdag.DecodeProtobuf(raw)
		if err != nil {
			t.Fatalf("boxo cannot read % x: %v", raw, err)
		}
		if got := boxoLinks(nd); !reflect.DeepEqual(got, n.links) {
			t.Fatalf("boxo read links %v, want %v", got, n.links)
		}
		again := new(mdag.ProtoNode)
		if nd.Data() != nil {
			var d pb.Data
			if err := proto.Unmarshal(nd.Data(), &d); err != nil {
				t.Fatalf("boxo cannot read UnixFS % x: %v", nd.Data(), err)
			}
			if got := fromPB(&d); !reflect.DeepEqual(got, n.u) {
				t.Fatalf("boxo read\n%+v\nwant\n%+v", got, n.u)
			}
			enc, err := proto.Marshal(&d)
			if err != nil {
				t.Fatal(err)
			}
			again.SetData(enc)
		} else if !n.noData {
			t.Fatal("boxo read no Data")
		}
		for _, l := range nd.Links() {
			if err := again.AddRawLink(l.Name, l); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(again.RawData(), raw) {
			t.Fatalf("encoded % x\nboxo    % x", raw, again.RawData())
		}

		if len(n.links) == 0 && !n.noData && n.u.Data != nil {
			tail := AppendLeafTail(nil, &n.u)
			leaf := append(AppendLeafHead(nil, n.u.Type, len(n.u.Data), len(tail)), n.u.Data...)
			if leaf = append(leaf, tail...); !bytes.Equal(leaf, raw) {
				t.Fatalf("leaf % x, node % x", leaf, raw)
			}
			if got, ok := LeafTailLen(len(raw), n.u.Type, len(n.u.Data)); !ok || got != len(tail) {
				t.Fatalf("LeafTailLen %d %v, want %d", got, ok, len(tail))
			}
		}

		fsn := ft.NewFSNode(n.u.Type) // with Filesize 0
		u := UnixFS{Type: n.u.Type, Has: HasFilesize}
		mtime := time.Unix(secs, int64(nanos%1_000_000_000))
		if has&1 != 0 {
			mtime = time.Time{}
		}
		for _, m := range []fs.FileMode{fs.FileMode(mode), fs.FileMode(filesize)} {
			fsn.SetMode(m)
			fsn.SetModTime(mtime)
			u.SetMode(m)
			u.SetModTime(mtime)
			want, err := fsn.GetBytes()
			if err != nil {
				t.Fatal(err)
			}
			if got := AppendUnixFS(nil, &u); !bytes.Equal(got, AppendData(nil, want)) {
				t.Fatalf("mode %v mtime %v: % x, FSNode % x", m, mtime, got, AppendData(nil, want))
			}
		}
	})
}

// FuzzDecodeBytes: whatever bytes are read here, boxo reads the same way.
// What boxo reads and this decoder refuses (not canonical) is left to
// boxo by the callers.
func FuzzDecodeBytes(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x02, 0x08, 0x01})
	f.Add([]byte{0x12, 0x03, 0x12, 0x01, 'a'})
	for _, s := range seeds {
		f.Add(encode(s.node()))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		links, data, err := decode(raw)
		if err != nil {
			return
		}
		nd, err := mdag.DecodeProtobuf(raw)
		if err != nil {
			t.Fatalf("read % x, boxo refused it: %v", raw, err)
		}
		if want := boxoLinks(nd); !reflect.DeepEqual(links, want) || !bytes.Equal(data, nd.Data()) || (data == nil) != (nd.Data() == nil) {
			t.Fatalf("links %v Data % x, boxo %v % x", links, data, want, nd.Data())
		}
		if data == nil {
			return
		}
		u, err := DecodeUnixFS(data)
		if err != nil {
			return
		}
		var d pb.Data
		if err := proto.Unmarshal(data, &d); err != nil {
			t.Fatalf("read UnixFS % x, boxo refused it: %v", data, err)
		}
		if want := fromPB(&d); !reflect.DeepEqual(u, want) {
			t.Fatalf("UnixFS\n%+v\nboxo\n%+v", u, want)
		}
	})
}
