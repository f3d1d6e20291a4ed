package pull

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/testtier"
)

// freeBytes is what statfs says unprivileged users may still write on
// path's filesystem.
func freeBytes(t *testing.T, path string) int64 {
	t.Helper()
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		t.Fatal(err)
	}
	return int64(s.Bavail) * int64(s.Bsize)
}

// TestDefaultMaxBytesFromFreeSpace: with no --max-bytes, a root whose
// files total more than DEST's filesystem can hold (beyond what pull
// already holds there) is refused before anything of it is fetched or
// written; a few kilobytes of blocks cannot fill the disk.
func TestDefaultMaxBytesFromFreeSpace(t *testing.T) {
	g := newDAGStore(t)
	dest := filepath.Join(t.TempDir(), "dest")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	// One file declaring 1 GiB more than the filesystem has free, its one
	// chunk a block nobody has: refused by the limit, nothing is asked
	// for; let through, the pull would fail on the missing chunk instead.
	h, _ := mh.Sum([]byte("never served"), mh.SHA2_256, -1)
	missing := cid.NewCidV1(cid.Raw, h)
	size := uint64(freeBytes(t, dest)) + 1<<30
	big := g.fileNode(size, []cid.Cid{missing}, []uint64{size})
	root := g.dirOf(named("small", g.text("small")), named("huge", big))
	_, err := pullInto(t, &Store{BS: g.bs}, root, dest, func(o *Options) { o.MaxBytes = 0 })
	if err == nil || !errors.Is(err, errLimit) || !strings.Contains(err.Error(), "free") {
		t.Fatalf("pull of a root larger than DEST's free space: %v, want the limit (DEST's free space) named", err)
	}
	if des, _ := os.ReadDir(dest); len(des) > 1 {
		t.Errorf("%d entries written", len(des))
	}
}

// TestHeldBytesCount: what a later pull may write is the free space plus
// what the files pull wrote hold (an update replaces them); the state
// knows that sum without a walk of DEST.
func TestHeldBytesCount(t *testing.T) {
	g := newDAGStore(t)
	tree := sample()
	root := g.build(tree)
	dest := filepath.Join(t.TempDir(), "dest")
	res := mustPull(t, &Store{BS: g.bs}, root, dest)
	d, err := os.Open(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	st := mustOpenState(t, dest, int(d.Fd()))
	defer st.close()
	if got := st.held(); got != res.Bytes {
		t.Errorf("the state says pull's files hold %d bytes, the root has %d", got, res.Bytes)
	}
}

// TestDefaultMaxEntries: the default entry limit is one a machine can
// hold the index of (about 100 bytes a path).
func TestDefaultMaxEntries(t *testing.T) {
	if DefaultMaxEntries > 20_000_000 || DefaultMaxEntries < 2_000_000 {
		t.Errorf("DefaultMaxEntries %d: not between 2 and 20 million", DefaultMaxEntries)
	}
}

// stallingServer answers every request with a 200, half of the body it
// announces, and then nothing until the test ends.
func stallingServer(t *testing.T) *httptest.Server {
	done := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Header().Set("Content-Type", "application/vnd.ipld.raw")
		w.WriteHeader(http.StatusOK)
		w.Write(make([]byte, 500))
		w.(http.Flusher).Flush()
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(done); s.Close() })
	return s
}

// TestStalledGateway: a gateway that stops sending in the middle of a
// body is given up after the read timeout (the next gateway is asked), so
// a pull never waits forever.
func TestStalledGateway(t *testing.T) {
	g := newDAGStore(t)
	tree := sample()
	root := g.build(tree)
	stall := stallingServer(t)
	for _, tc := range []struct {
		name string
		urls []string
		ok   bool
	}{
		{"only a stalling gateway", []string{stall.URL}, false},
		{"a stalling and an honest one", []string{stall.URL, serveGateway(t, g.bs).URL}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := gateways(t, tc.urls...)
			src.ReadTimeout = 200 * time.Millisecond
			dest := filepath.Join(t.TempDir(), "dest")
			writableAtCleanup(t, filepath.Dir(dest))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := Run(ctx, Options{Root: root, Dest: dest, Source: src, Jobs: 4, Repo: filepath.Join(filepath.Dir(dest), "repo")})
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				cancel()
				<-done
				t.Fatal("the pull was still waiting on the stalled gateway after 20 s")
			}
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				checkTree(t, dest, tree)
			} else if err == nil || !strings.Contains(err.Error(), "no data for") {
				t.Fatalf("pull from a stalled gateway: %v, want the read timeout named", err)
			}
		})
	}
}

// delayedSource is a source whose every block takes a moment.
type delayedSource struct{ Source }

func (d delayedSource) Block(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	time.Sleep(200 * time.Microsecond)
	return d.Source.Block(ctx, c)
}

// TestFileFetchBounded: a file fetched block by block is fetched a few
// blocks at a time whatever its DAG's shape; fan-out per level must not
// multiply into fan-out^depth blocks (and goroutines) held at once.
func TestFileFetchBounded(t *testing.T) {
	g := newDAGStore(t)
	// 4^6 = 4,096 distinct eight-byte leaves under 6 levels of nodes
	// linking 4 each (4^7 in the long tier): fetching with fan-out at
	// every level peaked at 5,212 goroutines for depth 6, 1,190 for 5.
	const fanout = 4
	depth := testtier.Size(5, 6, 7)
	n := 0
	var build func(level int) (cid.Cid, uint64)
	build = func(level int) (cid.Cid, uint64) {
		if level == 0 {
			n++
			return g.leaf([]byte(fmt.Sprintf("%08d", n)))
		}
		kids, sizes := make([]cid.Cid, fanout), make([]uint64, fanout)
		var total uint64
		for i := range kids {
			kids[i], sizes[i] = build(level - 1)
			total += sizes[i]
		}
		return g.fileNode(total, kids, sizes), total
	}
	file, size := build(depth)
	root := g.dirOf(&ipld.Link{Name: "deep", Cid: file})
	dest := filepath.Join(t.TempDir(), "dest")

	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				if n := int64(runtime.NumGoroutine()); n > peak.Load() {
					peak.Store(n)
				}
			}
		}
	}()
	base := runtime.NumGoroutine()
	res := mustPull(t, delayedSource{&Store{BS: g.bs}}, root, dest)
	close(stop)
	<-sampled
	if res.Bytes != int64(size) {
		t.Fatalf("wrote %d bytes, want %d", res.Bytes, size)
	}
	t.Logf("%d leaves, %d bytes; peak %d goroutines (%d before)", n, size, peak.Load(), base)
	if extra := peak.Load() - int64(base); extra > 100 {
		t.Errorf("%d goroutines at once for one file fetched block by block", extra)
	}
}
