package sync

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/export"
)

// TestGCKeepsKeptRootsOnly syncs two versions, collects all but the newest
// and checks the newest is complete while the old version's own blocks are
// gone; empty blocks (raw empty files) survive the leaf shortcut.
func TestGCKeepsKeptRootsOnly(t *testing.T) {
	for _, meta := range []string{"mtime,mode", "none"} {
		t.Run(meta, func(t *testing.T) {
			ctx := context.Background()
			src := incTree(t)
			if err := os.WriteFile(filepath.Join(src, "a/empty"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			store, err := blockstore.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			opts := Options{Src: src, Name: "gc", Profile: incProfile(t, meta)}
			first, err := Run(ctx, store, opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, "e.txt"), []byte("replaced entirely"), 0o644); err != nil {
				t.Fatal(err)
			}
			second, err := Run(ctx, store, opts)
			if err != nil {
				t.Fatal(err)
			}
			kept, err := store.Retire(1)
			if err != nil {
				t.Fatal(err)
			}
			if len(kept) != 1 || kept[0] != second.Root {
				t.Fatalf("kept %v, want only %s", kept, second.Root)
			}
			res, err := store.GC(ctx, []cid.Cid{cid.MustParse(second.Root)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Removed == 0 {
				t.Fatal("nothing removed")
			}
			fs, err := store.Fsck(ctx, []cid.Cid{cid.MustParse(second.Root)}, false, func(c cid.Cid, p string, err error) {
				t.Errorf("%s at %s: %v", c, p, err)
			})
			if err != nil || fs.Blocks == 0 {
				t.Fatalf("fsck: %+v %v", fs, err)
			}
			if _, err := export.CAR(ctx, store.Blockstore(), cid.MustParse(first.Root), discard{}); err == nil {
				t.Fatal("the collected root is still complete")
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
