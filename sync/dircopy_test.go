package sync

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

// TestDirBlockCopies: the walk reads a directory's previous version (a
// basic directory, and a HAMT with all its shards) from the copy of its
// blocks kept in the index, never from a copy that does not hash to the
// CIDs the root links, and not at all while the store is marked damaged
// (then only reading the store proves the blocks are there).
func TestDirBlockCopies(t *testing.T) {
	const ref = "copies"
	type spoiler func(t *testing.T, store *blockstore.Store, tree diff.Tree, dir string, d diff.PrevDir)
	lose := func(t *testing.T, store *blockstore.Store, tree diff.Tree, dir string, d diff.PrevDir) {
		// The last block: the directory's own, or a HAMT's deepest shard.
		raw := d.Blocks[len(d.Blocks)-1]
		c, err := cid.Prefix{Version: 1, Codec: cid.DagProtobuf, MhType: 0x12, MhLength: -1}.Sum(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Blockstore().DeleteBlock(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	other := func(t *testing.T, store *blockstore.Store, tree diff.Tree, dir string, d diff.PrevDir) {
		r, _, _ := store.Ref(ref)
		cur, _ := r.Current()
		l, _ := tree.Lookup(context.Background(), cid.MustParse(cur.Root), "f/g")
		g, err := tree.Dir(context.Background(), l.Cid)
		if err != nil {
			t.Fatal(err)
		}
		putCopy(t, store, ref, dir, g.Blocks)
	}
	garbage := func(t *testing.T, store *blockstore.Store, tree diff.Tree, dir string, d diff.PrevDir) {
		putCopy(t, store, ref, dir, [][]byte{[]byte("\x12\x34garbage"), d.Blocks[0][1:]})
	}
	cases := []struct {
		name  string
		dir   string
		spoil spoiler
		// the unchanged re-sync must not have read the lost block
		copyUsed bool
	}{
		{"block file lost, copy used", "a/b", lose, true},
		{"HAMT shard lost, copy used", "h", lose, true},
		{"copy of another directory", "a/b", other, false},
		{"copy of another directory for a HAMT", "h", other, false},
		{"garbage copy", "a/b", garbage, false},
		{"garbage copy of a HAMT", "h", garbage, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			store, err := blockstore.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			opts := Options{Src: copiesTree(t), Name: ref, Profile: copiesProfile(t)}
			var roots []string
			for range 2 {
				// The first run copies basic directories as it builds
				// them; HAMT shards are copied by the next run.
				sum, err := Run(ctx, store, opts)
				if err != nil {
					t.Fatal(err)
				}
				roots = append(roots, sum.Root)
			}
			root := cid.MustParse(roots[0])
			tree := diff.Tree{DAG: store.NewWriter(true)}
			l, _ := tree.Lookup(ctx, root, tc.dir)
			want, err := tree.Dir(ctx, l.Cid)
			if err != nil {
				t.Fatal(err)
			}
			if tc.dir == "h" && (!want.Sharded || len(want.Blocks) < 3) {
				t.Fatalf("h is not a HAMT of several shards: %d blocks", len(want.Blocks))
			}
			if got := copyOf(store, ref, tc.dir); !sameBlocks(got, want.Blocks) {
				t.Fatalf("the index holds %d blocks for %s, want its %d", len(got), tc.dir, len(want.Blocks))
			}
			tc.spoil(t, store, tree, tc.dir, want)

			third, err := Run(ctx, store, opts)
			if err != nil || third.Root != roots[0] {
				t.Fatalf("unchanged re-sync: root %s (want %s), %v", third.Root, roots[0], err)
			}
			res, err := store.Fsck(ctx, []cid.Cid{root}, false, func(cid.Cid, string, error) {})
			if err != nil {
				t.Fatal(err)
			}
			if lost := res.Missing == 1; lost != tc.copyUsed {
				t.Fatalf("copy used: want %v, but fsck: %+v", tc.copyUsed, res)
			}
			if got := copyOf(store, ref, tc.dir); !sameBlocks(got, want.Blocks) {
				t.Errorf("the re-sync left %d blocks as the copy of %s, want its %d", len(got), tc.dir, len(want.Blocks))
			}
			if !tc.copyUsed {
				return
			}
			// fsck marked the store; the next sync reads directories from
			// the store again, rebuilds the directory from the source, and
			// the hole is gone.
			fourth, err := Run(ctx, store, opts)
			if err != nil || fourth.Root != roots[0] {
				t.Fatalf("re-sync of a damaged store: root %s (want %s), %v", fourth.Root, roots[0], err)
			}
			if res, err := store.Fsck(ctx, []cid.Cid{root}, false, func(cid.Cid, string, error) {}); err != nil || res.Missing != 0 {
				t.Fatalf("fsck after the re-sync of a damaged store: %+v, %v", res, err)
			}
		})
	}
}

// copiesTree is incTree with a flat directory h of 60 entries.
func copiesTree(t *testing.T) string {
	src := incTree(t)
	if err := os.Mkdir(filepath.Join(src, "h"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		if err := os.WriteFile(filepath.Join(src, "h", fmt.Sprintf("pkg-%02d.tgz", i)), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// copiesProfile shards directories above 1 KiB, 8 ways: h is a HAMT of
// several levels.
func copiesProfile(t *testing.T) profile.Profile {
	threshold, fanout, meta := 1024, 8, "mtime,mode"
	p, err := profile.New(profile.V1_2025, profile.Overrides{HAMTThreshold: &threshold, MaxHAMTFanout: &fanout, Metadata: &meta})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func copyOf(store *blockstore.Store, ref, dir string) [][]byte {
	ix := store.Index(ref)
	defer ix.Close()
	d := ix.Dir(dir)
	defer d.Close()
	blocks, _ := d.Blocks()
	out := make([][]byte, len(blocks))
	for i, b := range blocks {
		out[i] = append([]byte(nil), b...)
	}
	return out
}

// sameBlocks compares two directories' blocks: the first in place, a
// HAMT's other shards in any order (they are read in parallel).
func sameBlocks(a, b [][]byte) bool {
	if len(a) != len(b) || len(a) == 0 || !bytes.Equal(a[0], b[0]) {
		return len(a) == 0 && len(b) == 0
	}
	sorted := func(x [][]byte) [][]byte {
		x = slices.Clone(x[1:])
		slices.SortFunc(x, bytes.Compare)
		return x
	}
	return reflect.DeepEqual(sorted(a), sorted(b))
}

func putCopy(t *testing.T, store *blockstore.Store, ref, dir string, blocks [][]byte) {
	t.Helper()
	ix := store.Index(ref)
	if err := ix.PutDir(context.Background(), dir, blocks); err != nil {
		t.Fatal(err)
	}
	if err := ix.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}
