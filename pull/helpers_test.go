package pull

import (
	"bytes"
	"context"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/boxo/blockservice"
	bstore "github.com/ipfs/boxo/blockstore"
	chunk "github.com/ipfs/boxo/chunker"
	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/hamt"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	"github.com/ipfs/boxo/ipld/unixfs/importer/trickle"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/gateway"
)

// spec is a tree as a test wants it: built into a DAG, and compared with
// what pull wrote.
type spec struct {
	kind   byte // 'f', 'd', 'l'
	data   []byte
	target string
	mode   fs.FileMode // permission bits (and setuid/setgid/sticky), 0: not stored
	mtime  time.Time   // zero: not stored
	kids   map[string]*spec
	hamt   bool // a directory stored as a HAMT (fanout 16)
	chunk  int  // file chunk size (default 1 KiB, so small files have several)
	layout byte // 'b' balanced (default), 't' trickle, 'r' balanced with raw leaves
}

var t0 = time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.UTC)

func file(data string, mode fs.FileMode, mtime time.Time) *spec {
	return &spec{kind: 'f', data: []byte(data), mode: mode, mtime: mtime}
}

func dir(mode fs.FileMode, mtime time.Time, kids map[string]*spec) *spec {
	return &spec{kind: 'd', mode: mode, mtime: mtime, kids: kids}
}

func symlinkTo(target string, mtime time.Time) *spec {
	return &spec{kind: 'l', target: target, mtime: mtime}
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// clone deep-copies a spec, so a test can mutate a version.
func (s *spec) clone() *spec {
	c := *s
	c.data = bytes.Clone(s.data)
	if s.kids != nil {
		c.kids = map[string]*spec{}
		for k, v := range s.kids {
			c.kids[k] = v.clone()
		}
	}
	return &c
}

// at returns the entry at a "/"-separated path.
func (s *spec) at(path string) *spec {
	for _, p := range strings.Split(path, "/") {
		s = s.kids[p]
	}
	return s
}

// dagStore is an in-memory block store with a DAG service over it.
type dagStore struct {
	t  testing.TB
	bs bstore.Blockstore
	ds ipld.DAGService
}

func newDAGStore(t testing.TB) *dagStore {
	bs := bstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
	return &dagStore{t: t, bs: bs, ds: mdag.NewDAGService(blockservice.New(bs, nil))}
}

var v1 = cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256}

func (g *dagStore) add(nd ipld.Node) cid.Cid {
	g.t.Helper()
	if err := g.ds.Add(context.Background(), nd); err != nil {
		g.t.Fatal(err)
	}
	return nd.Cid()
}

// protoWith makes a dag-pb node with UnixFS data fsn and the given links,
// in the given order, names unchecked: what a hostile root can hold.
func (g *dagStore) protoWith(fsn *ft.FSNode, links ...*ipld.Link) cid.Cid {
	g.t.Helper()
	data, err := fsn.GetBytes()
	if err != nil {
		g.t.Fatal(err)
	}
	nd := mdag.NodeWithData(data)
	nd.SetCidBuilder(v1)
	for _, l := range links {
		if err := nd.AddRawLink(l.Name, l); err != nil {
			g.t.Fatal(err)
		}
	}
	return g.add(nd)
}

// totalBytes is the size of every block in the store.
func (g *dagStore) totalBytes() int64 {
	g.t.Helper()
	keys, err := g.bs.AllKeysChan(context.Background())
	if err != nil {
		g.t.Fatal(err)
	}
	var n int64
	for k := range keys {
		b, err := g.bs.Get(context.Background(), k)
		if err != nil {
			g.t.Fatal(err)
		}
		n += int64(len(b.RawData()))
	}
	return n
}

func (g *dagStore) size(c cid.Cid) uint64 {
	nd, err := g.ds.Get(context.Background(), c)
	if err != nil {
		g.t.Fatal(err)
	}
	s, err := nd.Size()
	if err != nil {
		g.t.Fatal(err)
	}
	return s
}

// build turns a spec into blocks and returns its root.
func (g *dagStore) build(s *spec) cid.Cid {
	g.t.Helper()
	ctx := context.Background()
	switch s.kind {
	case 'f':
		size := s.chunk
		if size == 0 {
			size = 1024
		}
		params := helpers.DagBuilderParams{Maxlinks: 8, RawLeaves: s.layout == 'r', CidBuilder: v1, Dagserv: g.ds, FileMode: s.mode, FileModTime: s.mtime}
		db, err := params.New(chunk.NewSizeSplitter(bytes.NewReader(s.data), int64(size)))
		if err != nil {
			g.t.Fatal(err)
		}
		var nd ipld.Node
		if s.layout == 't' {
			nd, err = trickle.Layout(db)
		} else {
			nd, err = balanced.Layout(db)
		}
		if err != nil {
			g.t.Fatal(err)
		}
		return nd.Cid()
	case 'l':
		fsn := ft.NewFSNode(ft.TSymlink)
		fsn.SetData([]byte(s.target))
		fsn.SetModTime(s.mtime)
		return g.protoWith(fsn)
	}
	names := make([]string, 0, len(s.kids))
	for n := range s.kids {
		names = append(names, n)
	}
	sort.Strings(names)
	if s.hamt {
		sh, err := hamt.NewShard(g.ds, 16)
		if err != nil {
			g.t.Fatal(err)
		}
		sh.SetCidBuilder(v1)
		for _, n := range names {
			c := g.build(s.kids[n])
			if err := sh.SetLink(ctx, n, &ipld.Link{Cid: c, Size: g.size(c)}); err != nil {
				g.t.Fatal(err)
			}
		}
		sh.SetStat(s.mode, s.mtime)
		nd, err := sh.Node()
		if err != nil {
			g.t.Fatal(err)
		}
		return g.add(nd)
	}
	fsn := ft.NewFSNode(ft.TDirectory)
	fsn.SetMode(s.mode)
	fsn.SetModTime(s.mtime)
	var links []*ipld.Link
	for _, n := range names {
		c := g.build(s.kids[n])
		links = append(links, &ipld.Link{Name: n, Cid: c, Size: g.size(c)})
	}
	return g.protoWith(fsn, links...)
}

// gatewayServer serves bs as ipfs-sync's serve does, counting requests.
type gatewayServer struct {
	*httptest.Server
	requests atomic.Int64
	cars     atomic.Int64
}

func serveGateway(t testing.TB, bs bstore.Blockstore) *gatewayServer {
	h, err := gateway.Handler(bs, false)
	if err != nil {
		t.Fatal(err)
	}
	g := &gatewayServer{}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.requests.Add(1)
		if r.URL.Query().Get("format") == "car" {
			g.cars.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(g.Close)
	return g
}

// checkTree fails the test unless dest holds exactly s, nothing else:
// types, contents, link targets, modes and mtimes.
func checkTree(t testing.TB, dest string, s *spec) {
	t.Helper()
	var walk func(path, rel string, s *spec)
	walk = func(path, rel string, s *spec) {
		fi, err := os.Lstat(path)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !s.mtime.IsZero() && !fi.ModTime().Equal(s.mtime) {
			t.Errorf("%s: mtime %v, want %v", rel, fi.ModTime().UTC(), s.mtime)
		}
		perm := fs.FileMode(st.Mode & 0o7777)
		want := unixMode(s.mode)
		switch s.kind {
		case 'f':
			if !fi.Mode().IsRegular() {
				t.Errorf("%s: %v, want a file", rel, fi.Mode())
				return
			}
			if s.mode == 0 {
				want = 0o644
			}
			got, _ := os.ReadFile(path)
			if !bytes.Equal(got, s.data) {
				t.Errorf("%s: content differs (%d bytes, want %d)", rel, len(got), len(s.data))
			}
		case 'l':
			if fi.Mode()&fs.ModeSymlink == 0 {
				t.Errorf("%s: %v, want a symlink", rel, fi.Mode())
				return
			}
			if got, _ := os.Readlink(path); got != s.target {
				t.Errorf("%s: -> %q, want %q", rel, got, s.target)
			}
			return
		case 'd':
			if !fi.IsDir() {
				t.Errorf("%s: %v, want a directory", rel, fi.Mode())
				return
			}
			if s.mode == 0 {
				want = perm // not stored: whatever DEST had
			}
			des, _ := os.ReadDir(path)
			for _, de := range des {
				if _, ok := s.kids[de.Name()]; !ok {
					t.Errorf("%s: unexpected entry %q", rel, de.Name())
				}
			}
			for n, k := range s.kids {
				walk(filepath.Join(path, n), rel+"/"+n, k)
			}
		}
		if perm != want {
			t.Errorf("%s: mode %04o, want %04o", rel, perm, want)
		}
	}
	walk(dest, ".", s)
}

// unixMode is what chmod(2) gets for a Go mode.
func unixMode(m fs.FileMode) fs.FileMode {
	u := m.Perm()
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// pullInto runs a pull with test defaults: the repository keeping its
// state is "repo" beside DEST.
func pullInto(t testing.TB, src Source, root cid.Cid, dest string, mod ...func(*Options)) (Result, error) {
	t.Helper()
	o := Options{Root: root, Dest: dest, Source: src, Jobs: 4, Repo: filepath.Join(filepath.Dir(dest), "repo")}
	for _, m := range mod {
		m(&o)
	}
	writableAtCleanup(t, filepath.Dir(o.Dest))
	return Run(context.Background(), o)
}

// writableAtCleanup makes the directories under dir writable by their
// owner when t ends. A pulled tree keeps its read-only directories, whose
// entries only root may remove, so t.TempDir's removal fails for anyone
// else; this cleanup, registered after that TempDir was made, runs before
// its removal. Whatever it cannot fix, the removal reports.
func writableAtCleanup(t testing.TB, dir string) {
	t.Cleanup(func() {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			// Called on a directory before it is read, so one left
			// unreadable is read once made readable.
			if err == nil && d.IsDir() {
				if fi, err := d.Info(); err == nil && fi.Mode().Perm()&0o700 != 0o700 {
					os.Chmod(p, fi.Mode().Perm()|0o700)
				}
			}
			return nil
		})
	})
}

func mustPull(t testing.TB, src Source, root cid.Cid, dest string, mod ...func(*Options)) Result {
	t.Helper()
	res, err := pullInto(t, src, root, dest, mod...)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	return res
}

func gateways(t testing.TB, urls ...string) *Gateways {
	t.Helper()
	g, err := NewGateways(urls)
	if err != nil {
		t.Fatal(err)
	}
	return g
}
