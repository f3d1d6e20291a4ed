package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	pb "github.com/ipfs/boxo/ipld/unixfs/pb"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	carv2 "github.com/ipld/go-car/v2"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

// The requests a puller makes: a file's CAR, a HAMT shard's whole DAG.
const (
	carPathEntityQuery = "?" + carEntityQuery
	carPathAllQuery    = "?" + carAllQuery
)

// TestCARPathAnswersAsBoxo: the entity CAR of every file and plain
// directory of a tree, and the CAR of all under every file and directory
// (HAMTs too), asked for as a puller asks (by CID, with its Accept or
// with none), is answered by the CAR path itself, and the answer is boxo's:
// status, every header but Date, the CAR's bytes. Over DAGs of one
// block and many (several levels deep), raw and dag-pb leaves, trickle,
// CIDv0, blocks inlined in identity CIDs, leaves repeated within a file
// (sent once), an empty file. Requests the CAR path leaves to boxo
// (a HAMT's shards, other scopes, HEAD, conditionals, other CAR
// parameters) are boxo's answer too.
func TestCARPathAnswersAsBoxo(t *testing.T) {
	files := fastPathFiles()
	files["repeated.bin"] = bytes.Repeat(randomBytes(20, 1024), 40)
	files["repeated-tail.bin"] = append(bytes.Repeat([]byte{0}, 9000), randomBytes(21, 3000)...)
	files["deep.bin"] = randomBytes(22, 300_000)
	src := writeTree(t, files)
	small := profile.Overrides{Chunker: ptr("size-1024"), MaxFileLinks: ptr(4), HAMTThreshold: ptr(256), MaxHAMTFanout: ptr(8)}
	for _, tc := range []struct {
		name    string
		profile string
		o       profile.Overrides
	}{
		{"v1 raw leaves", profile.V1_2025, small},
		{"v1 dag-pb leaves with mtime", profile.V1_2025, func() profile.Overrides { o := small; o.Metadata = ptr("mtime,mode"); return o }()},
		{"v0 trickle", profile.V0_2015, func() profile.Overrides { o := small; o.Trickle = ptr(true); return o }()},
		{"v0 balanced", profile.V0_2015, small},
		{"inline", profile.V1_2025, func() profile.Overrides { o := small; o.Inline, o.InlineLimit = ptr(true), ptr(64); return o }()},
		{"default chunker", profile.V1_2025, profile.Overrides{HAMTThreshold: ptr(256), MaxHAMTFanout: ptr(8)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, root := syncTree(t, src, tc.profile, tc.o)
			rd := s.Blockstore().(BlockReader)
			fast := must(Handler(s.Blockstore(), false))
			boxo := must(Handler(plainBlockstore{s.Blockstore()}, false))
			// The CAR path alone: what it leaves to boxo is a failure.
			alone := &carPath{rd: rd, next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				t.Errorf("%s %s: left to boxo", r.Method, r.URL)
				w.WriteHeader(599)
			})}
			// Directories: the CAR path takes a plain one (its block), not
			// a HAMT (all its shards).
			var targets []cid.Cid
			plain := 0
			for _, c := range []cid.Cid{root, resolvePath(t, s, root, "a"), resolvePath(t, s, root, "a/b"), resolvePath(t, s, root, "odd"), resolvePath(t, s, root, "many")} {
				d, err := newResolver(rd).dir(t.Context(), c, nil)
				if err != nil {
					t.Fatal(err)
				}
				if d.fanout == 0 {
					plain++
				}
				targets = append(targets, c)
			}
			if plain < 2 || plain == len(targets) {
				t.Fatalf("%d plain directories of %d: want both kinds", plain, len(targets))
			}
			for p := range files {
				targets = append(targets, resolvePath(t, s, root, p))
			}
			for _, c := range targets {
				hamt := false
				if c.Prefix().Codec == cid.DagProtobuf && c.Prefix().MhType != mh.IDENTITY {
					d, err := newResolver(rd).dir(t.Context(), c, nil)
					hamt = err == nil && d.fanout > 0
				}
				for _, q := range []string{carPathEntityQuery, carPathAllQuery} {
					target := "/ipfs/" + c.String() + q
					for _, h := range []http.Header{{"Accept": {carAccept}}, nil} {
						compare(t, fast, boxo, http.MethodGet, target, h)
						if c.Prefix().MhType == mh.IDENTITY || hamt && q == carPathEntityQuery {
							continue
						}
						req := httptest.NewRequest(http.MethodGet, target, nil)
						for k, v := range h {
							req.Header[k] = v
						}
						rec := httptest.NewRecorder()
						alone.ServeHTTP(rec, req)
						if rec.Code != http.StatusOK {
							t.Errorf("%s: status %d", target, rec.Code)
						}
					}
				}
			}
			file := "/ipfs/" + resolvePath(t, s, root, "big.bin").String()
			accept := http.Header{"Accept": {carAccept}}
			for _, tc := range []struct {
				method, target string
				h              http.Header
			}{
				{http.MethodGet, file + "?dag-scope=all&format=car", accept},
				{http.MethodGet, file + "?format=car&dag-scope=block", accept},
				{http.MethodGet, file + "?format=car", accept},
				{http.MethodGet, file + "?format=car&dag-scope=entity&entity-bytes=0-1000", accept},
				{http.MethodGet, file + "?dag-scope=entity", accept},
				{http.MethodGet, file + carPathEntityQuery, http.Header{"Accept": {"application/vnd.ipld.car; version=1; order=dfs; dups=y"}}},
				{http.MethodGet, file + carPathEntityQuery, http.Header{"Accept": {"application/vnd.ipld.car; version=1; order=unk; dups=n"}}},
				{http.MethodGet, file + carPathEntityQuery, http.Header{"Accept": {"application/vnd.ipld.raw"}}},
				{http.MethodGet, file + carPathEntityQuery, http.Header{"Accept": {carAccept}, "If-None-Match": {carEtag(file[len("/ipfs/"):], false)}}},
				{http.MethodGet, file + carPathEntityQuery, http.Header{"Accept": {carAccept}, "Cache-Control": {"only-if-cached"}}},
				{http.MethodHead, file + carPathEntityQuery, accept},
				{http.MethodHead, file + carPathAllQuery, accept},
				{http.MethodGet, "/ipfs/" + root.String() + carPathAllQuery, http.Header{"Accept": {carAccept}, "If-None-Match": {carEtag(root.String(), true)}}},
				{http.MethodGet, "/ipfs/" + root.String() + "/big.bin" + carPathEntityQuery, accept},
				{http.MethodGet, "/ipfs/" + cid.NewCidV1(cid.Raw, resolvePath(t, s, root, "big.bin").Hash()).String() + carPathEntityQuery, accept},
				{http.MethodGet, "/ipfs/bafkqaaa" + carPathEntityQuery, accept},
			} {
				compare(t, fast, boxo, tc.method, tc.target, tc.h)
			}
		})
	}
}

// The CAR path writes a block larger than writeSize in a write of its
// own, from the buffer it was read into, and gathers the rest (the
// header, smaller blocks, each block's length and CID) to writeSize.
func TestCARPathWritesLarge(t *testing.T) {
	src := writeTree(t, map[string][]byte{"big.bin": randomBytes(1, 4<<20+1000), "small.bin": randomBytes(2, 3*writeSize)})
	for _, tc := range []struct {
		file   string
		chunk  string
		writes int // at most
	}{
		{"big.bin", "size-1048576", 2*5 + 1},
		{"small.bin", "size-1024", 3 + 1},
	} {
		s, root := syncTree(t, src, profile.V1_2025, profile.Overrides{Chunker: ptr(tc.chunk)})
		c := resolvePath(t, s, root, tc.file)
		rec := &writeRecorder{ResponseRecorder: httptest.NewRecorder()}
		must(Handler(s.Blockstore(), false)).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ipfs/"+c.String()+carPathEntityQuery, nil))
		if rec.Code != http.StatusOK || len(rec.writes) > tc.writes {
			t.Errorf("%s: status %d, writes %v; want 200, at most %d", tc.file, rec.Code, rec.writes, tc.writes)
		}
		for _, n := range rec.writes {
			if n > writeSize && n < 1<<20 {
				t.Errorf("%s: a write of %d bytes, more than writeSize and less than a leaf", tc.file, n)
			}
		}
	}
}

// Children that hold no bytes: boxo's UnixFS reader never loads those
// at the start of a node (it skips to the first byte) but loads the
// ones after it, so an entity CAR leaves out the first and has the
// others; a CAR of all has every one. The file here is made by hand
// (no importer writes empty leaves into a file of several).
func TestCARPathEmptyChildren(t *testing.T) {
	ctx := t.Context()
	s, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	data := func(n *ft.FSNode) []byte {
		b, err := n.GetBytes()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	leaf := func(typ pb.Data_DataType) *mdag.ProtoNode {
		n := mdag.NodeWithData(data(ft.NewFSNode(typ)))
		n.SetCidBuilder(cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256})
		return n
	}
	children := []blocks.Block{rawBlock(t, ""), leaf(pb.Data_File), rawBlock(t, "hello"), leaf(pb.Data_Raw), rawBlock(t, "world")}
	fsn := ft.NewFSNode(ft.TFile)
	root := mdag.NodeWithData(nil)
	root.SetCidBuilder(cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256})
	for _, b := range children {
		size := uint64(len(b.RawData()))
		if b.Cid().Prefix().Codec == cid.DagProtobuf {
			size = 0
		}
		fsn.AddBlockSize(size)
		if err := root.AddRawLink("", &ipld.Link{Cid: b.Cid(), Size: size}); err != nil {
			t.Fatal(err)
		}
	}
	root.SetData(data(fsn))
	w := s.NewWriter(false)
	for _, b := range append(children, root) {
		if err := w.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	fast := must(Handler(s.Blockstore(), false))
	boxo := must(Handler(plainBlockstore{s.Blockstore()}, false))
	for _, tc := range []struct {
		query  string
		blocks int // in the CAR, the root's included
	}{
		{carPathEntityQuery, 4},
		{carPathAllQuery, 6},
	} {
		target := "/ipfs/" + root.Cid().String() + tc.query
		compare(t, fast, boxo, http.MethodGet, target, http.Header{"Accept": {carAccept}})
		rec := httptest.NewRecorder()
		fast.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		br, err := carv2.NewBlockReader(bytes.NewReader(rec.Body.Bytes()))
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		n := 0
		for ; ; n++ {
			if _, err := br.Next(); err != nil {
				if err != io.EOF {
					t.Errorf("%s: %v", target, err)
				}
				break
			}
		}
		if n != tc.blocks {
			t.Errorf("%s: %d blocks; want %d", target, n, tc.blocks)
		}
	}
}
