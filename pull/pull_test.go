package pull

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// sample is a mirror-like tree with every kind of entry pull writes.
func sample() *spec {
	big := &spec{kind: 'f', data: randBytes(1, 40_000), mode: 0o644, mtime: t0.Add(time.Hour)}
	trick := &spec{kind: 'f', data: randBytes(2, 20_000), mode: 0o644, mtime: t0, layout: 't'}
	raw := &spec{kind: 'f', data: randBytes(3, 9_000), mode: 0o600, mtime: t0, layout: 'r'}
	flat := map[string]*spec{}
	for i := range 40 {
		flat[string(rune('a'+i%26))+strings.Repeat("x", i)+".tar.gz"] = file(string(randBytes(uint64(100+i), 300+i)), 0o644, t0.Add(time.Duration(i)*time.Second))
	}
	hamtDir := dir(0o755, t0, flat)
	hamtDir.hamt = true
	return dir(0o755, t0.Add(2*time.Hour), map[string]*spec{
		"README":     file("hello mirror\n", 0o644, t0),
		"README.txt": symlinkTo("README", t0),
		"debian":     symlinkTo(".", t0),
		"abs":        symlinkTo("/etc/passwd", t0),
		"dangling":   symlinkTo("nowhere/at/all", t0),
		"empty":      file("", 0o644, t0),
		"tools":      dir(0o775, t0, map[string]*spec{"run.sh": file("#!/bin/sh\necho hi\n", 0o755, t0), "suid": file("x", 0o4755, t0), "sticky": dir(0o1777, t0, nil)}),
		"pool": dir(0o755, t0, map[string]*spec{
			"main": dir(0o755, t0, map[string]*spec{
				"h": dir(0o755, t0, map[string]*spec{"hello": dir(0o755, t0, map[string]*spec{"hello_1.0_amd64.deb": big, "trickle.bin": trick, "raw.bin": raw})}),
			}),
			"contrib": dir(0o755, t0, nil),
		}),
		"cran":                           hamtDir,
		"nomtime":                        file("no mtime stored", 0, time.Time{}),
		"readonly":                       dir(0o555, t0, map[string]*spec{"f": file("ro", 0o444, t0)}),
		"Packages":                       &spec{kind: 'f', data: randBytes(4, 30_000), mode: 0o644, mtime: t0},
		"one-block":                      &spec{kind: 'f', data: randBytes(5, 20_000), mode: 0o644, mtime: t0, chunk: 1 << 16},
		"name with spaces\tand\nnewline": file("odd", 0o644, t0),
	})
}

type source struct {
	name string
	make func(t *testing.T, g *dagStore) Source
}

var sources = []source{
	{"store", func(t *testing.T, g *dagStore) Source { return &Store{BS: g.bs} }},
	{"gateway", func(t *testing.T, g *dagStore) Source { return gateways(t, serveGateway(t, g.bs).URL) }},
	{"two gateways, one down", func(t *testing.T, g *dagStore) Source {
		dead := serveGateway(t, g.bs)
		dead.Close()
		return gateways(t, dead.URL, serveGateway(t, g.bs).URL)
	}},
	{"two gateways", func(t *testing.T, g *dagStore) Source {
		return gateways(t, serveGateway(t, g.bs).URL, serveGateway(t, g.bs).URL)
	}},
}

// TestRoundTrip pulls the sample into an empty directory from each kind of
// source, then again: the second run fetches nothing.
func TestRoundTrip(t *testing.T) {
	for _, s := range sources {
		t.Run(s.name, func(t *testing.T) {
			g := newDAGStore(t)
			tree := sample()
			root := g.build(tree)
			dest := filepath.Join(t.TempDir(), "dest")
			src := s.make(t, g)
			res := mustPull(t, src, root, dest)
			checkTree(t, dest, tree)
			if res.Previous != nil || res.Files != 52 || res.FilesWritten != 52 || res.Symlinks != 4 {
				t.Errorf("first pull: %+v", res)
			}
			// Each block crosses once (CAR framing aside).
			if all := g.totalBytes(); res.BytesFetched > all+all/20+4096 {
				t.Errorf("first pull fetched %d bytes, the DAG has %d", res.BytesFetched, all)
			}
			before := src.Counters()
			res = mustPull(t, src, root, dest)
			checkTree(t, dest, tree)
			if after := src.Counters(); after.Bytes != before.Bytes || res.FilesWritten != 0 || res.Previous == nil || *res.Previous != root.String() {
				t.Errorf("second pull fetched %d bytes, wrote %d files: %+v", after.Bytes-before.Bytes, res.FilesWritten, res)
			}
		})
	}
}

// TestIncremental applies a publish cycle's kinds of change and checks
// that DEST matches each new root and that only what changed is fetched.
func TestIncremental(t *testing.T) {
	cases := []struct {
		name   string
		change func(s *spec)
		// at most this many bytes fetched beyond the changed files' sizes
		slack int64
		check func(t *testing.T, r Result)
	}{
		{"nothing", func(s *spec) {}, 0, nil},
		{"append to a chunked file", func(s *spec) {
			p := s.at("Packages")
			p.data = append(p.data, randBytes(9, 3000)...)
			p.mtime = p.mtime.Add(time.Minute)
		}, 4096, func(t *testing.T, r Result) {
			if r.BytesReused < 29*1024 {
				t.Errorf("reused %d bytes of the old version, want the first 29 chunks", r.BytesReused)
			}
		}},
		{"patch inside a chunked file", func(s *spec) {
			p := s.at("pool/main/h/hello/hello_1.0_amd64.deb")
			p.data[20_000] ^= 1
			p.mtime = p.mtime.Add(time.Minute)
		}, 2048, nil},
		{"patch a trickle file", func(s *spec) {
			p := s.at("pool/main/h/hello/trickle.bin")
			p.data[100] ^= 1
		}, 4096, func(t *testing.T, r Result) {
			if r.BytesReused < 15_000 {
				t.Errorf("reused %d bytes", r.BytesReused)
			}
		}},
		{"patch a raw-leaf file", func(s *spec) {
			p := s.at("pool/main/h/hello/raw.bin")
			p.data[8_500] ^= 1
		}, 2048, func(t *testing.T, r Result) {
			if r.BytesReused < 8*1024 {
				t.Errorf("reused %d bytes", r.BytesReused)
			}
		}},
		{"rename", func(s *spec) {
			deb := s.at("pool/main/h/hello").kids
			deb["hello_1.0_all.deb"] = deb["hello_1.0_amd64.deb"]
			delete(deb, "hello_1.0_amd64.deb")
		}, 1024, func(t *testing.T, r Result) {
			if r.FilesCopied != 1 {
				t.Errorf("files_copied %d, want 1", r.FilesCopied)
			}
		}},
		{"remove a file and a subtree", func(s *spec) {
			delete(s.kids, "README")
			delete(s.at("pool").kids, "main")
		}, 1024, func(t *testing.T, r Result) {
			if r.Deleted != 2 {
				t.Errorf("deleted %d, want 2", r.Deleted)
			}
		}},
		{"add into the HAMT", func(s *spec) {
			s.at("cran").kids["Zz_1.0.tar.gz"] = file("new package", 0o644, t0)
			s.at("cran").mtime = t0.Add(time.Hour)
		}, 2048, nil},
		{"file becomes a directory, directory a symlink", func(s *spec) {
			s.kids["README"] = dir(0o755, t0, map[string]*spec{"x": file("x", 0o644, t0)})
			s.kids["tools"] = symlinkTo("pool", t0)
		}, 1024, nil},
		{"mode and mtime only", func(s *spec) {
			s.at("tools/run.sh").mode = 0o700
			s.at("README").mtime = t0.Add(time.Hour)
			s.at("pool").mtime = t0.Add(time.Hour)
			s.at("readonly").mode = 0o755
		}, 2048, nil},
		{"touch and chmod a one-block file", func(s *spec) {
			s.at("one-block").mtime = t0.Add(time.Hour)
			s.at("one-block").mode = 0o600
		}, 1024, nil},
		{"symlink retargeted", func(s *spec) {
			s.kids["debian"] = symlinkTo("..", t0)
		}, 1024, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newDAGStore(t)
			old := sample()
			oldRoot := g.build(old)
			next := old.clone()
			tc.change(next)
			newRoot := g.build(next)
			src := gateways(t, serveGateway(t, g.bs).URL)
			dest := filepath.Join(t.TempDir(), "dest")
			mustPull(t, src, oldRoot, dest)
			before := src.Counters().Bytes
			res := mustPull(t, src, newRoot, dest)
			checkTree(t, dest, next)
			fetched := src.Counters().Bytes - before
			if limit := changedBytes(old, next) + tc.slack; fetched > limit {
				t.Errorf("fetched %d bytes, want at most %d", fetched, limit)
			}
			if res.Previous == nil || *res.Previous != oldRoot.String() {
				t.Errorf("previous %v, want %s", res.Previous, oldRoot)
			}
			if tc.check != nil {
				tc.check(t, res)
			}
			// The state kept what the new root needs: nothing to fetch.
			before = src.Counters().Bytes
			if res := mustPull(t, src, newRoot, dest); src.Counters().Bytes != before || res.FilesWritten != 0 {
				t.Errorf("pulling the new root again fetched %d bytes, wrote %d files", src.Counters().Bytes-before, res.FilesWritten)
			}
		})
	}
}

// changedBytes sums the sizes of the files of b that differ from a
// (content only) or are new.
func changedBytes(a, b *spec) int64 {
	var n int64
	var walk func(a, b *spec)
	walk = func(a, b *spec) {
		switch {
		case b.kind == 'd':
			for name, k := range b.kids {
				var ak *spec
				if a != nil && a.kind == 'd' {
					ak = a.kids[name]
				}
				walk(ak, k)
			}
		case b.kind == 'f' && (a == nil || a.kind != 'f' || string(a.data) != string(b.data)):
			n += int64(len(b.data))
		}
	}
	walk(a, b)
	return n
}

// TestLocalChangesRepaired edits DEST by hand between two pulls of the
// same root: the second pull puts back exactly the root, fetching only the
// damaged files.
func TestLocalChangesRepaired(t *testing.T) {
	g := newDAGStore(t)
	tree := sample()
	root := g.build(tree)
	src := gateways(t, serveGateway(t, g.bs).URL)
	dest := filepath.Join(t.TempDir(), "dest")
	mustPull(t, src, root, dest)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dest, "README"), []byte("edited by hand"), 0o644))
	must(os.Remove(filepath.Join(dest, "Packages")))
	must(os.WriteFile(filepath.Join(dest, "pool/extra"), []byte("not in the root"), 0o644))
	must(os.Chmod(filepath.Join(dest, "tools/run.sh"), 0o600))
	must(os.Remove(filepath.Join(dest, "debian")))
	must(os.Symlink("/", filepath.Join(dest, "debian")))
	must(os.RemoveAll(filepath.Join(dest, "cran")))
	must(os.WriteFile(filepath.Join(dest, "cran"), []byte("a file where a directory was"), 0o644))
	must(os.WriteFile(filepath.Join(dest, tmpPrefix+"0123"), []byte("a leftover"), 0o644))
	must(os.Chtimes(filepath.Join(dest, "pool/main/h"), time.Now(), time.Now()))
	// An entry added with the directory's mtime put back: its ctime moved.
	must(os.WriteFile(filepath.Join(dest, "tools/extra"), []byte("sneaked in"), 0o644))
	must(os.Chtimes(filepath.Join(dest, "tools"), t0, t0))
	must(os.Chmod(filepath.Join(dest, "tools/sticky"), 0o700))

	before := src.Counters().Bytes
	res := mustPull(t, src, root, dest, func(o *Options) { o.Delete = DeleteAll })
	checkTree(t, dest, tree)
	fetched := src.Counters().Bytes - before
	// README, Packages, run.sh (mode: same size and mtime, so it is
	// rewritten), the symlink, and the HAMT directory with its 40 files.
	if fetched > 80_000 || res.Deleted != 2 {
		t.Errorf("fetched %d bytes, deleted %d: %+v", fetched, res.Deleted, res)
	}

	// --no-delete keeps what the root does not have.
	must(os.WriteFile(filepath.Join(dest, "pool/extra"), []byte("keep me"), 0o644))
	mustPull(t, src, root, dest, func(o *Options) { o.Delete = DeleteNone })
	if _, err := os.Lstat(filepath.Join(dest, "pool/extra")); err != nil {
		t.Errorf("--no-delete removed pool/extra: %v", err)
	}
}

// failingSource fails every block after the first n.
type failingSource struct {
	Source
	n atomic.Int64
}

var errInjected = errors.New("injected failure")

func (f *failingSource) Block(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if f.n.Add(-1) < 0 {
		return nil, errInjected
	}
	return f.Source.Block(ctx, c)
}

func (f *failingSource) CAR(context.Context, cid.Cid, string) (Stream, error) { return nil, nil }

// TestResume interrupts pulls at several points: DEST never holds a file
// under its final name with the wrong content, and the next run finishes,
// fetching less than a full pull.
func TestResume(t *testing.T) {
	g := newDAGStore(t)
	tree := sample()
	root := g.build(tree)
	full := &Store{BS: g.bs}
	mustPull(t, full, root, filepath.Join(t.TempDir(), "full"))
	total := full.Counters().Blocks

	for _, after := range []int64{1, 5, 20, 40, 60} {
		dest := filepath.Join(t.TempDir(), "dest")
		src := &failingSource{Source: &Store{BS: g.bs}}
		src.n.Store(after)
		if _, err := pullInto(t, src, root, dest); !errors.Is(err, errInjected) {
			t.Fatalf("after %d blocks: %v, want the injected failure", after, err)
		}
		checkComplete(t, dest, tree)
		again := &Store{BS: g.bs}
		mustPull(t, again, root, dest)
		checkTree(t, dest, tree)
		// Blocks of files being fetched when the run failed are lost (a
		// file is kept only once complete); the rest is not fetched again.
		if got := again.Counters().Blocks; after >= 20 && got >= total {
			t.Errorf("after %d blocks: the resumed run fetched %d blocks of %d", after, got, total)
		}
	}
}

// checkComplete fails if a file of DEST is not one of the root's files at
// that path (a half-written file under its final name).
func checkComplete(t *testing.T, dest string, s *spec) {
	t.Helper()
	filepath.WalkDir(dest, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, _ := filepath.Rel(dest, path)
		want := s.at(filepath.ToSlash(rel))
		got, _ := os.ReadFile(path)
		if want == nil || want.kind != 'f' || string(got) != string(want.data) {
			t.Errorf("%s is in DEST but not as the root has it", rel)
		}
		return nil
	})
}

// TestLocked refuses a second pull into the same DEST with the repository
// lock's error (exit status 4): one with the same repository (its state is
// locked), and one keeping its state in another (DEST itself is locked).
func TestLocked(t *testing.T) {
	dest, fd := openDest(t)
	st := mustOpenState(t, dest, fd)
	defer st.close()
	g := newDAGStore(t)
	root := g.build(sample())
	if _, err := pullInto(t, &Store{BS: g.bs}, root, dest); !errors.Is(err, blockstore.ErrLocked) {
		t.Fatalf("second pull: %v, want ErrLocked", err)
	}
	st.close()
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	other := func(o *Options) { o.Repo = t.TempDir() }
	if _, err := pullInto(t, &Store{BS: g.bs}, root, dest, other); !errors.Is(err, blockstore.ErrLocked) {
		t.Fatalf("pull with another repository: %v, want ErrLocked", err)
	}
	unix.Flock(fd, unix.LOCK_UN)
	mustPull(t, &Store{BS: g.bs}, root, dest, other)
}

// TestIsLeaf checks the re-encoding that lets a chunk of the old local
// file stand for a leaf, for each leaf form kubo writes.
func TestIsLeaf(t *testing.T) {
	for _, layout := range []byte{'b', 't', 'r'} {
		g := newDAGStore(t)
		data := randBytes(7, 5000)
		root := g.build(&spec{kind: 'f', data: data, layout: layout, chunk: 1000})
		nd, err := g.ds.Get(context.Background(), root)
		if err != nil {
			t.Fatal(err)
		}
		var leaves []cid.Cid
		var collect func(c cid.Cid)
		collect = func(c cid.Cid) {
			n, _ := g.ds.Get(context.Background(), c)
			if len(n.Links()) == 0 {
				leaves = append(leaves, c)
			}
			for _, l := range n.Links() {
				collect(l.Cid)
			}
		}
		collect(nd.Cid())
		if len(leaves) != 5 {
			t.Fatalf("layout %c: %d leaves", layout, len(leaves))
		}
		for i, c := range leaves {
			chunk := data[i*1000 : (i+1)*1000]
			if !isLeaf(c, chunk) || !isLeafEncoded(c, chunk) {
				t.Errorf("layout %c: leaf %d not recognised", layout, i)
			}
			chunk[0] ^= 1
			if isLeaf(c, chunk) {
				t.Errorf("layout %c: a changed chunk passes as leaf %d", layout, i)
			}
		}
	}
}

// TestStateLogTail: a run killed mid-write leaves a torn frame at the end
// of a log; the next run reads every frame before it and cuts it off.
func TestStateLogTail(t *testing.T) {
	dest, fd := openDest(t)
	st := mustOpenState(t, dest, fd)
	c := cid.NewCidV1(cid.Raw, []byte{0x00, 0x03, 'a', 'b', 'c'})
	for _, p := range []string{"a", "b/c", "d\nodd"} {
		if err := st.put(record{Path: p, Cid: c, Local: metadata.Stat{Type: metadata.File, Size: 3, MTime: time.Unix(0, 42).UTC(), Mode: 0o644}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.save(); err != nil {
		t.Fatal(err)
	}
	st.close()
	idx := filepath.Join(st.dir, indexFile)
	f, err := os.OpenFile(idx, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{40, 1, 2, 3}) // a frame announcing 40 bytes, torn
	f.Close()
	st = mustOpenState(t, dest, fd)
	defer st.close()
	if len(st.index) != 3 || st.index["d\nodd"].Local.MTime.UnixNano() != 42 {
		t.Fatalf("index after a torn tail: %v", st.index)
	}
	if fi, _ := os.Stat(idx); fi.Size() == 0 {
		t.Fatalf("index size %d", fi.Size())
	}
}

// TestStateCommit: paths a run did not keep are gone after commit (and
// after reopening), and the logs are compacted once mostly dead, so they
// stay in proportion to the tree over many runs.
func TestStateCommit(t *testing.T) {
	dest, fd := openDest(t)
	c := cid.NewCidV1(cid.Raw, []byte{0x00, 0x03, 'a', 'b', 'c'})
	rec := func(p string) record {
		return record{Path: p, Cid: c, Local: metadata.Stat{Type: metadata.File, Size: 3, MTime: time.Unix(0, 42).UTC(), Mode: 0o644}}
	}
	var dir string
	for run := range 50 {
		st := mustOpenState(t, dest, fd)
		dir = st.dir
		if run > 0 {
			if len(st.index) != 100 {
				t.Fatalf("run %d: %d records, want 100", run, len(st.index))
			}
			if _, ok := st.index[fmt.Sprintf("run%d/%d", run-1, 99)]; !ok {
				t.Fatalf("run %d: last run's records are missing", run)
			}
		}
		// Each run keeps half of the last run's paths and writes 50 new.
		for p := range st.index {
			var r, i int
			fmt.Sscanf(p, "run%d/%d", &r, &i)
			if i%2 == 0 {
				st.index[p].live.Store(true)
			}
		}
		for i := range 100 {
			if i%2 == 1 || run == 0 {
				if err := st.put(rec(fmt.Sprintf("run%d/%d", run, i))); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := st.settle(); err != nil {
			t.Fatal(err)
		}
		if err := st.record(c); err != nil {
			t.Fatal(err)
		}
		st.close()
	}
	fi, err := os.Stat(filepath.Join(dir, indexFile))
	if err != nil || fi.Size() > 200_000 {
		t.Fatalf("index log: %v, %d bytes after 50 runs of 100 paths", err, fi.Size())
	}
}

// TestBigHAMTGroups pulls a HAMT directory too big to read ahead whole: it
// is listed and fetched a child shard's subtree at a time (few requests),
// or, with no read-ahead at all, entry by entry; the result is the same.
func TestBigHAMTGroups(t *testing.T) {
	kids := map[string]*spec{}
	for i := range 300 {
		kids[fmt.Sprintf("pkg%03d_1.0.tar.gz", i)] = file(string(randBytes(uint64(i), 200+i)), 0o644, t0)
	}
	big := dir(0o755, t0, kids)
	big.hamt = true
	tree := dir(0o755, t0, map[string]*spec{"contrib": big})
	for _, tc := range []struct {
		name       string
		ahead      uint64
		atMostReqs int64
	}{
		{"shard groups", 16 << 10, 30},
		{"no read-ahead", 1, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newDAGStore(t)
			root := g.build(tree)
			gw := serveGateway(t, g.bs)
			dest := filepath.Join(t.TempDir(), "dest")
			mustPull(t, gateways(t, gw.URL), root, dest, func(o *Options) { o.subtreeMax = tc.ahead })
			checkTree(t, dest, tree)
			t.Logf("%d requests", gw.requests.Load())
			if n := gw.requests.Load(); n > tc.atMostReqs {
				t.Errorf("%d requests for 300 entries", n)
			}
		})
	}
}

// openDest is a new, empty DEST and a descriptor of it, closed with the
// test; its repository is "repo" beside it, as pullInto has it.
func openDest(t *testing.T) (string, int) {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "dest")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(dest)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return dest, int(d.Fd())
}

func mustOpenState(t *testing.T, dest string, destfd int) *state {
	t.Helper()
	id, err := identify(destfd, dest)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openState(filepath.Join(filepath.Dir(dest), "repo"), id, destfd)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
