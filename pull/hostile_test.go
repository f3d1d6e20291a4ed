package pull

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/hamt"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
)

// Hand-made hostile blocks.

func (g *dagStore) leaf(data []byte) (cid.Cid, uint64) {
	fsn := ft.NewFSNode(ft.TFile)
	fsn.SetData(data)
	return g.protoWith(fsn), uint64(len(data))
}

// fileNode is a file node over children with the given declared sizes and
// filesize, whatever the children really hold.
func (g *dagStore) fileNode(filesize uint64, kids []cid.Cid, sizes []uint64) cid.Cid {
	fsn := ft.NewFSNode(ft.TFile)
	var links []*ipld.Link
	for i, k := range kids {
		fsn.AddBlockSize(sizes[i])
		links = append(links, &ipld.Link{Cid: k})
	}
	// AddBlockSize moves Filesize along; set what the test wants declared.
	fsn.UpdateFilesize(int64(filesize) - int64(fsn.FileSize()))
	return g.protoWith(fsn, links...)
}

func (g *dagStore) dirOf(links ...*ipld.Link) cid.Cid {
	return g.protoWith(ft.NewFSNode(ft.TDirectory), links...)
}

func named(name string, c cid.Cid) *ipld.Link { return &ipld.Link{Name: name, Cid: c} }

func (g *dagStore) text(s string) cid.Cid {
	c, _ := g.leaf([]byte(s))
	return c
}

func (g *dagStore) symlinkNode(target string) cid.Cid {
	fsn := ft.NewFSNode(ft.TSymlink)
	fsn.SetData([]byte(target))
	return g.protoWith(fsn)
}

// hamtWith is a one-shard HAMT (fanout 256) whose value links are exactly
// the given names in the given slots, consistent or not.
func (g *dagStore) hamtWith(slots []int, names []string, c cid.Cid) cid.Cid {
	bitfield := make([]byte, 32)
	var links []*ipld.Link
	for i, s := range slots {
		bitfield[31-s/8] |= 1 << (s % 8)
		links = append(links, named(fmt.Sprintf("%02X", s)+names[i], c))
	}
	data, err := ft.HAMTShardData(bitfield, 256, hamt.HashMurmur3)
	if err != nil {
		g.t.Fatal(err)
	}
	fsn, err := ft.FSNodeFromBytes(data)
	if err != nil {
		g.t.Fatal(err)
	}
	return g.protoWith(fsn, links...)
}

// snapshot lists everything under dir but skip, with type, size, mode and
// mtime: what "nothing written outside DEST" is checked against.
func snapshot(t *testing.T, dir, skip string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if path == skip {
			return filepath.SkipDir
		}
		if fi, err := os.Lstat(path); err == nil {
			fmt.Fprintf(&b, "%s %v %d %v\n", path, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		}
		return nil
	})
	return b.String()
}

// TestHostileRoots serves hand-made hostile DAGs over HTTP and pulls
// each: every one is refused with an error naming the path in the DAG (so
// exit status 1), and nothing outside DEST changes.
func TestHostileRoots(t *testing.T) {
	cases := []struct {
		name  string
		build func(g *dagStore, outside string) cid.Cid
		opts  func(*Options)
		want  string // in the error
	}{
		{"dot-dot", func(g *dagStore, _ string) cid.Cid {
			return g.dirOf(named("..", g.text("escaped")))
		}, nil, `entry "..": not a file name`},
		{"dot", func(g *dagStore, _ string) cid.Cid {
			return g.dirOf(named(".", g.text("x")))
		}, nil, `entry ".": not a file name`},
		{"empty name", func(g *dagStore, _ string) cid.Cid {
			return g.dirOf(named("", g.text("x")))
		}, nil, `entry "": empty name`},
		{"slash", func(g *dagStore, _ string) cid.Cid {
			return g.dirOf(named("../outside/pwned", g.text("x")))
		}, nil, `contains '/'`},
		{"slash below a symlink", func(g *dagStore, outside string) cid.Cid {
			return g.dirOf(named("a", g.symlinkNode(outside)), named("a/pwned", g.text("x")))
		}, nil, `contains '/'`},
		{"NUL", func(g *dagStore, _ string) cid.Cid {
			return g.dirOf(named("a\x00b", g.text("x")))
		}, nil, `contains NUL`},
		{"long name", func(g *dagStore, _ string) cid.Cid {
			return g.dirOf(named(strings.Repeat("n", 256), g.text("x")))
		}, nil, `longer than 255`},
		{"duplicate: symlink then directory", func(g *dagStore, outside string) cid.Cid {
			return g.dirOf(named("a", g.symlinkNode(outside)), named("a", g.dirOf(named("pwned", g.text("x")))))
		}, nil, `"a" appears twice`},
		{"duplicate deep down", func(g *dagStore, _ string) cid.Cid {
			return g.dirOf(named("sub", g.dirOf(named("f", g.text("1")), named("f", g.text("2")))))
		}, nil, `/sub: entry "f" appears twice`},
		{"duplicate across HAMT shards", func(g *dagStore, _ string) cid.Cid {
			return g.hamtWith([]int{1, 7}, []string{"dup", "dup"}, g.text("x"))
		}, nil, `"dup" appears twice`},
		{"bad name in a HAMT", func(g *dagStore, _ string) cid.Cid {
			return g.dirOf(named("h", g.hamtWith([]int{3}, []string{".."}, g.text("x"))))
		}, nil, `/h: entry "..": not a file name`},
		{"too deep", func(g *dagStore, _ string) cid.Cid {
			c := g.dirOf(named("f", g.text("bottom")))
			for range 20 {
				c = g.dirOf(named("d", c))
			}
			return c
		}, func(o *Options) { o.MaxDepth = 10 }, `deeper than 10 (--max-depth)`},
		{"too wide", func(g *dagStore, _ string) cid.Cid {
			var ls []*ipld.Link
			for i := range 30 {
				ls = append(ls, named(fmt.Sprint(i), g.text("x")))
			}
			return g.dirOf(ls...)
		}, func(o *Options) { o.MaxEntries = 20 }, `more than 20 entries (--max-entries)`},
		{"too big", func(g *dagStore, _ string) cid.Cid {
			return g.dirOf(named("big", g.text(strings.Repeat("b", 2000))))
		}, func(o *Options) { o.MaxBytes = 1000 }, `/big: files total more than 1000 bytes (--max-bytes)`},
		{"billion laughs", func(g *dagStore, _ string) cid.Cid {
			// 32 × 32 × 32 links to one 1 KiB leaf: 32 MiB declared from
			// a few kilobytes of blocks. Not more: boxo's gateway walks
			// every link to answer for the file, 2 s for 64 × 64 × 64.
			c, n := g.leaf(bytes.Repeat([]byte("ha"), 512))
			for range 3 {
				kids, sizes := make([]cid.Cid, 32), make([]uint64, 32)
				for i := range kids {
					kids[i], sizes[i] = c, n
				}
				c, n = g.fileNode(32*n, kids, sizes), 32*n
			}
			return g.dirOf(named("laughs", c))
		}, func(o *Options) { o.MaxBytes = 1 << 20 }, `/laughs: files total more than`},
		{"child larger than declared", func(g *dagStore, _ string) cid.Cid {
			leaf, _ := g.leaf([]byte("twenty bytes of data"))
			return g.dirOf(named("f", g.fileNode(10, []cid.Cid{leaf}, []uint64{10})))
		}, nil, `/f: block`},
		{"zero chunk declared larger", func(g *dagStore, _ string) cid.Cid {
			zero, _ := g.leaf(make([]byte, 1000))
			return g.dirOf(named("f", g.fileNode(2000, []cid.Cid{zero}, []uint64{2000})))
		}, nil, `/f: block`},
		{"zero chunk declared larger beside a true one", func(g *dagStore, _ string) cid.Cid {
			zero, n := g.leaf(make([]byte, 1000))
			return g.dirOf(named("a", g.fileNode(2*n, []cid.Cid{zero, zero}, []uint64{n, n})),
				named("b", g.fileNode(2*n, []cid.Cid{zero}, []uint64{2 * n})))
		}, nil, `/b: block`},
		{"filesize beyond its chunks", func(g *dagStore, _ string) cid.Cid {
			leaf, n := g.leaf([]byte("ten bytes!"))
			return g.dirOf(named("f", g.fileNode(100, []cid.Cid{leaf}, []uint64{n})))
		}, nil, `declares 100 bytes but holds 10`},
		{"empty chunk", func(g *dagStore, _ string) cid.Cid {
			leaf, _ := g.leaf(nil)
			return g.dirOf(named("f", g.fileNode(0, []cid.Cid{leaf}, []uint64{0})))
		}, nil, `an empty chunk`},
		{"file DAG too deep", func(g *dagStore, _ string) cid.Cid {
			c, n := g.leaf([]byte("x"))
			for range 40 {
				c = g.fileNode(n, []cid.Cid{c}, []uint64{n})
			}
			return g.dirOf(named("deep", c))
		}, nil, `/deep: file DAG deeper than`},
		{"directory inside a file", func(g *dagStore, _ string) cid.Cid {
			return g.dirOf(named("f", g.fileNode(1, []cid.Cid{g.dirOf()}, []uint64{1})))
		}, nil, `inside a file`},
		{"dag-cbor entry", func(g *dagStore, _ string) cid.Cid {
			b := []byte{0xa1, 0x61, 0x61, 0x01}
			h, _ := mh.Sum(b, mh.SHA2_256, -1)
			blk, _ := blocks.NewBlockWithCid(b, cid.NewCidV1(cid.DagCBOR, h))
			if err := g.bs.Put(context.Background(), blk); err != nil {
				t.Fatal(err)
			}
			return g.dirOf(named("cbor", blk.Cid()))
		}, nil, `is not UnixFS`},
		{"symlink with an empty target", func(g *dagStore, _ string) cid.Cid {
			return g.dirOf(named("l", g.symlinkNode("")))
		}, nil, `/l: symlink with an empty target`},
		{"symlink target with NUL", func(g *dagStore, _ string) cid.Cid {
			return g.dirOf(named("l", g.symlinkNode("/etc\x00/passwd")))
		}, nil, `/l: symlink target contains NUL`},
		{"root is a file", func(g *dagStore, _ string) cid.Cid {
			return g.text("not a directory")
		}, nil, `not a directory`},
		{"unknown block", func(g *dagStore, _ string) cid.Cid {
			h, _ := mh.Sum([]byte("nobody has this"), mh.SHA2_256, -1)
			return g.dirOf(named("gone", cid.NewCidV1(cid.DagProtobuf, h)))
		}, nil, `/gone: block`},
	}
	for _, ahead := range []uint64{0, 1} {
		for _, tc := range cases {
			name := tc.name
			if ahead == 1 {
				name += ", no read-ahead"
			}
			t.Run(name, func(t *testing.T) {
				parent := t.TempDir()
				outside := filepath.Join(parent, "outside")
				if err := os.MkdirAll(filepath.Join(outside, "sub"), 0o755); err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o644)
				dest := filepath.Join(parent, "dest")
				os.Mkdir(dest, 0o755)
				g := newDAGStore(t)
				root := tc.build(g, outside)
				before := snapshot(t, parent, dest)
				repo := t.TempDir()
				opts := []func(*Options){func(o *Options) { o.Jobs = 2; o.subtreeMax = ahead; o.Repo = repo }}
				if tc.opts != nil {
					opts = append(opts, tc.opts)
				}
				start := time.Now()
				_, err := pullInto(t, gateways(t, serveGateway(t, g.bs).URL), root, dest, opts...)
				if err == nil {
					t.Fatal("pull succeeded")
				}
				t.Logf("refused: %v", err)
				if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), root.String()) {
					t.Errorf("error %q\nwant it to contain %q and the root", err, tc.want)
				}
				if errors.Is(err, blockstore.ErrLocked) || errors.Is(err, context.Canceled) {
					t.Errorf("error %v would not exit 1", err)
				}
				if took := time.Since(start); took > 10*time.Second {
					t.Errorf("refusing took %v", took)
				}
				if after := snapshot(t, parent, dest); after != before {
					t.Errorf("outside DEST changed:\nbefore:\n%s\nafter:\n%s", before, after)
				}
			})
		}
	}
}

// TestSymlinkThenDirectory pulls a root where "a" is a symlink to a
// directory outside DEST, then one where "a" is a directory with a file
// in it: the symlink is replaced, never followed.
func TestSymlinkThenDirectory(t *testing.T) {
	parent := t.TempDir()
	outside := filepath.Join(parent, "outside")
	os.Mkdir(outside, 0o755)
	dest := filepath.Join(parent, "dest")
	g := newDAGStore(t)
	src := gateways(t, serveGateway(t, g.bs).URL)
	repo := t.TempDir()
	inRepo := func(o *Options) { o.Repo = repo }
	first := dir(0o755, t0, map[string]*spec{"a": symlinkTo(outside, t0), "b": symlinkTo(outside+"/f", t0)})
	mustPull(t, src, g.build(first), dest, inRepo)
	checkTree(t, dest, first)
	second := dir(0o755, t0, map[string]*spec{
		"a": dir(0o755, t0, map[string]*spec{"pwned": file("x", 0o644, t0)}),
		"b": file("y", 0o644, t0),
	})
	before := snapshot(t, parent, dest)
	mustPull(t, src, g.build(second), dest, inRepo)
	checkTree(t, dest, second)
	if after := snapshot(t, parent, dest); after != before {
		t.Errorf("outside DEST changed:\n%s\n%s", before, after)
	}
}

// TestCorruptGateway: a gateway that answers with the wrong bytes is
// caught by the hash check; with a second, honest gateway the pull
// succeeds, with only the liar it fails.
func TestCorruptGateway(t *testing.T) {
	g := newDAGStore(t)
	tree := sample()
	root := g.build(tree)
	honest := serveGateway(t, g.bs)
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(honest.URL + r.URL.String())
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		b := buf.Bytes()
		if len(b) > 0 {
			b[len(b)-1] ^= 1 // flip a bit of every answer
		}
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		w.Write(b)
	}))
	defer liar.Close()

	dest := filepath.Join(t.TempDir(), "dest")
	_, err := pullInto(t, gateways(t, liar.URL), root, dest)
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("pull from a lying gateway: %v", err)
	}
	mustPull(t, gateways(t, liar.URL, honest.URL), root, dest)
	checkTree(t, dest, tree)
}
