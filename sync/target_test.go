package sync_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/export"
	"github.com/ipfs-sync/ipfs-sync/gateway"
	"github.com/ipfs-sync/ipfs-sync/internal/cartest"
	"github.com/ipfs-sync/ipfs-sync/profile"
	"github.com/ipfs-sync/ipfs-sync/remote"
	isync "github.com/ipfs-sync/ipfs-sync/sync"
)

// targetTree writes a tree with a file of several chunks, small files, a
// symlink and nested directories, and with flat > 0 a directory "flat" of
// that many files; every mtime is old.
func targetTree(t *testing.T, flat int) string {
	t.Helper()
	src := t.TempDir()
	if flat > 0 {
		fxMkdir(t, filepath.Join(src, "flat"), 0o755)
		kuboHAMTDir(t, filepath.Join(src, "flat"), flat, 12, 12, "flat")
		fxTouch(t, filepath.Join(src, "flat"), time.Unix(1_600_000_000, 0))
	}
	fxMkdir(t, filepath.Join(src, "pool/main"), 0o755)
	fxWriteFrom(t, filepath.Join(src, "pool/main/big.deb"), randomData(3<<20+123, "big"), 0o644)
	fxWrite(t, filepath.Join(src, "pool/main/small.deb"), []byte("small"), 0o644)
	fxWrite(t, filepath.Join(src, "Release"), []byte("release 1"), 0o644)
	fxWrite(t, filepath.Join(src, "run.sh"), []byte("#!/bin/sh"), 0o755)
	fxSymlink(t, "pool/main/big.deb", filepath.Join(src, "latest"))
	old := time.Unix(1_600_000_000, 0)
	for _, p := range []string{"pool/main/big.deb", "pool/main/small.deb", "Release", "run.sh", "latest", "pool/main", "pool", "."} {
		fxTouch(t, filepath.Join(src, p), old)
	}
	return src
}

// touchAll gives every entry of src a new mtime, as a fresh checkout has.
func touchAll(t *testing.T, src string) {
	t.Helper()
	now := time.Now()
	err := filepath.Walk(src, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			fxTouch(t, p, now)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPreviousRootOnTarget syncs into an empty repository against a root
// only a gateway holds (ipfs-sync's own, over the repository that made
// it), as a runner that keeps nothing does: the root is a stateful run's,
// files are compared by CID whatever their mtimes say, only directories
// are read from the target (never a file's blocks), what is read is kept,
// and the new repository holds the whole new DAG.
func TestPreviousRootOnTarget(t *testing.T) {
	for _, tc := range []struct {
		name     string
		metadata string
		change   func(t *testing.T, src string)
		found    bool // the target finds the root (else it is given as Base)
		want     isync.Counts
		// entryReads is how many blocks besides directories may be read:
		// a removed entry's, a changed symlink's, and for --car a changed
		// file of several chunks' old root.
		entryReads int
		// flat is the size of a directory stored as a HAMT of several
		// levels (a threshold of 1000 bytes, fanout 16).
		flat int
	}{
		{"unchanged, touched", "mode", touchAll, true, isync.Counts{Unchanged: 4}, 0, 0},
		{"unchanged, touched, Base", "mode", touchAll, false, isync.Counts{Unchanged: 4}, 0, 0},
		{"a file rewritten, one removed", "mode", func(t *testing.T, src string) {
			fxWrite(t, filepath.Join(src, "Release"), []byte("release 2"), 0o644)
			if err := os.Remove(filepath.Join(src, "run.sh")); err != nil {
				t.Fatal(err)
			}
			touchAll(t, src)
		}, true, isync.Counts{Modified: 1, Removed: 1, Unchanged: 2}, 1, 0},
		{"mtimes stored, touched", "mtime,mode", touchAll, true, isync.Counts{Modified: 4}, 2, 0},
		{"a file added to a HAMT", "mode", func(t *testing.T, src string) {
			fxWrite(t, filepath.Join(src, "flat", "new-file"), []byte("new"), 0o644)
			touchAll(t, src)
		}, true, isync.Counts{Added: 1, Unchanged: 4 + 300}, 0, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := targetTree(t, tc.flat)
			o := profile.Overrides{Metadata: &tc.metadata}
			if tc.flat > 0 {
				o.HAMTThreshold, o.MaxHAMTFanout = ptr(1000), ptr(16)
			}
			p := fxProfile(t, profile.V1_2025, o)
			old, held := fxImport(t, src, p)
			srv, asked := gatewayOf(t, held)
			tc.change(t, src)
			want, _ := fxImport(t, src, p) // a stateful run's root

			store, err := blockstore.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			target := &remote.Target{Source: srv}
			car := filepath.Join(t.TempDir(), "delta.car")
			opts := isync.Options{Src: src, Profile: p, Filter: diff.Filter{Hidden: true}, Target: target, CAR: car}
			if tc.found {
				target.Previous = func(_ context.Context, name string) (cid.Cid, error) {
					if name != src {
						t.Errorf("Previous asked for %q, the ref is %q", name, src)
					}
					return old, nil
				}
			} else {
				opts.Base = old.String()
			}
			sum, err := isync.Run(t.Context(), store, opts)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Root != want.String() {
				t.Fatalf("root %s, a stateful run's is %s", sum.Root, want)
			}
			if sum.Previous == nil || *sum.Previous != old.String() || sum.PreviousFrom != srv.String() {
				t.Fatalf("previous %v from %q, want %s from %s", sum.Previous, sum.PreviousFrom, old, srv)
			}
			if sum.FileChanges != tc.want {
				t.Errorf("file changes %+v, want %+v", sum.FileChanges, tc.want)
			}
			// Directories, kept; the root block of an entry gone or of a
			// changed symlink (what it was), and the old root of a changed
			// file of several chunks (the --car delta's walk pairs its
			// chunks): never a block below a file's root.
			linked := map[cid.Cid]bool{}
			var others []cid.Cid
			shards := 0
			for _, c := range asked() {
				b, err := held.Blockstore().Get(t.Context(), c)
				if err != nil {
					t.Fatal(err)
				}
				if !isDirBlock(t, b.RawData()) {
					others = append(others, c)
					continue
				}
				if has, _ := store.Blockstore().Has(t.Context(), c); !has {
					t.Errorf("directory %s read from the target but not kept", c)
				}
				nd, _ := mdag.DecodeProtobuf(b.RawData())
				if fsn, _ := ft.FSNodeFromBytes(nd.Data()); fsn.Type() == ft.THAMTShard {
					shards++
				}
				for _, l := range nd.Links() {
					linked[l.Cid] = true
				}
			}
			if tc.flat > 0 && shards < 2 {
				t.Errorf("read %d HAMT shards: the flat directory is no HAMT of several levels", shards)
			}
			if len(others) > tc.entryReads {
				t.Errorf("read %d blocks that are no directory from the target, want at most %d", len(others), tc.entryReads)
			}
			for _, c := range others {
				if !linked[c] {
					t.Errorf("read %s from the target: no directory read links it", c)
				}
			}
			if err := export.Walk(t.Context(), store.Blockstore(), want, func(cid.Cid, []byte) error { return nil }); err != nil {
				t.Fatalf("the new repository lacks part of its root: %v", err)
			}
			// --car is the delta against the root on the target: what a
			// repository holding both versions gives.
			fxRun(t, held, src, p)
			var delta []string
			if err := export.WalkSince(t.Context(), held.Blockstore(), old, want, func(c cid.Cid, _ []byte) error {
				delta = append(delta, c.String())
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if got := cartest.Read(t, car).CIDs(); !slices.Equal(got, delta) {
				t.Errorf("--car holds %d blocks, the delta is %d: %v, want %v", len(got), len(delta), got, delta)
			}
		})
	}
}

// gatewayOf serves store as a trustless gateway; asked lists the CIDs
// requested so far.
func gatewayOf(t *testing.T, store *blockstore.Store) (*remote.Gateway, func() []cid.Cid) {
	t.Helper()
	h, err := gateway.Handler(store.Blockstore(), false)
	if err != nil {
		t.Fatal(err)
	}
	var mu gosync.Mutex
	var asked []cid.Cid
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := cid.Decode(strings.TrimPrefix(r.URL.Path, "/ipfs/")); err == nil {
			mu.Lock()
			asked = append(asked, c)
			mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g, err := remote.NewGateway(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return g, func() []cid.Cid {
		mu.Lock()
		defer mu.Unlock()
		return append([]cid.Cid(nil), asked...)
	}
}

func isDirBlock(t *testing.T, data []byte) bool {
	t.Helper()
	nd, err := mdag.DecodeProtobuf(data)
	if err != nil {
		return false
	}
	fsn, err := ft.FSNodeFromBytes(nd.Data())
	return err == nil && (fsn.Type() == ft.TDirectory || fsn.Type() == ft.THAMTShard)
}

// TestPreviousRootLookupFails: a target that cannot say which root it
// holds makes the run a full import with a warning (the root is the same),
// not a failure: whether the target can be reached is the hand-off's to
// report.
func TestPreviousRootLookupFails(t *testing.T) {
	src := targetTree(t, 0)
	p := fxProfile(t, profile.V1_2025, profile.Overrides{})
	want, _ := fxImport(t, src, p)
	store, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	g, err := remote.NewGateway("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	var warned []string
	sum, err := isync.Run(t.Context(), store, isync.Options{Src: src, Profile: p, Filter: diff.Filter{Hidden: true},
		Warn: func(_ string, err error) { warned = append(warned, err.Error()) },
		Target: &remote.Target{Source: g, Previous: func(context.Context, string) (cid.Cid, error) {
			return cid.Undef, errors.New("connection refused")
		}}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Root != want.String() || sum.Previous != nil || sum.PreviousFrom != "" {
		t.Fatalf("root %s, previous %v from %q; want %s with none", sum.Root, sum.Previous, sum.PreviousFrom, want)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "connection refused") {
		t.Fatalf("warnings %q, want one naming the failure", warned)
	}
}
