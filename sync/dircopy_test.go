package sync

import (
	"bytes"
	"context"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/diff"
)

// TestDirBlockCopies: the walk reads a directory's previous version from
// the copy of its block kept in the index, never from a copy that does not
// hash to the CID the root links there, and not at all while the store is
// marked damaged (then only reading the store proves the block is there).
func TestDirBlockCopies(t *testing.T) {
	const name = "copies"
	cases := []struct {
		name  string
		spoil func(t *testing.T, store *blockstore.Store, tree diff.Tree, root cid.Cid)
		// the unchanged re-sync must not have read the "a/b" block file
		copyUsed bool
	}{
		{"block file lost, copy used", func(t *testing.T, store *blockstore.Store, tree diff.Tree, root cid.Cid) {
			l, _ := tree.Lookup(context.Background(), root, "a/b")
			if err := store.Blockstore().DeleteBlock(context.Background(), l.Cid); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"copy of another directory", func(t *testing.T, store *blockstore.Store, tree diff.Tree, root cid.Cid) {
			l, _ := tree.Lookup(context.Background(), root, "f/g")
			d, err := tree.Dir(context.Background(), l.Cid)
			if err != nil {
				t.Fatal(err)
			}
			putCopy(t, store, name, "a/b", d.Block)
		}, false},
		{"garbage copy", func(t *testing.T, store *blockstore.Store, tree diff.Tree, root cid.Cid) {
			putCopy(t, store, name, "a/b", []byte("\x12\x34garbage"))
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			store, err := blockstore.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			opts := Options{Src: incTree(t), Name: name, Profile: incProfile(t, "mtime,mode")}
			first, err := Run(ctx, store, opts)
			if err != nil {
				t.Fatal(err)
			}
			root := cid.MustParse(first.Root)
			tree := diff.Tree{DAG: store.NewWriter(true)}
			ab, _ := tree.Lookup(ctx, root, "a/b")
			want, err := tree.Dir(ctx, ab.Cid)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := store.Index(name).Dir("a/b").Block(); !ok || !bytes.Equal(got, want.Block) {
				t.Fatalf("after a full import the index holds %x for a/b, want its block %x", got, want.Block)
			}
			tc.spoil(t, store, tree, root)

			second, err := Run(ctx, store, opts)
			if err != nil || second.Root != first.Root {
				t.Fatalf("unchanged re-sync: root %s (want %s), %v", second.Root, first.Root, err)
			}
			has, _ := store.Blockstore().Has(ctx, ab.Cid)
			if tc.copyUsed == has {
				t.Fatalf("copy used: want %v, but the a/b block is in the store: %v", tc.copyUsed, has)
			}
			idx := store.Index(name).Dir("a/b")
			defer idx.Close()
			if got, ok := idx.Block(); !ok || !bytes.Equal(got, want.Block) {
				t.Errorf("the re-sync left %x as the copy of a/b, want its block", got)
			}
			if !tc.copyUsed {
				return
			}
			// fsck sees the hole; the next sync reads directories from the
			// store again, rebuilds a/b from the source, and the hole is gone.
			res, err := store.Fsck(ctx, []cid.Cid{root}, false, func(cid.Cid, string, error) {})
			if err != nil || res.Missing != 1 || !store.Damaged() {
				t.Fatalf("fsck: %+v, damaged %v, %v", res, store.Damaged(), err)
			}
			third, err := Run(ctx, store, opts)
			if err != nil || third.Root != first.Root {
				t.Fatalf("re-sync of a damaged store: root %s (want %s), %v", third.Root, first.Root, err)
			}
			if has, _ := store.Blockstore().Has(ctx, ab.Cid); !has {
				t.Fatal("the re-sync of a damaged store did not write a/b's block again")
			}
		})
	}
}

func putCopy(t *testing.T, store *blockstore.Store, ref, dir string, block []byte) {
	t.Helper()
	ix := store.Index(ref)
	if err := ix.PutDir(context.Background(), dir, block); err != nil {
		t.Fatal(err)
	}
	if err := ix.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}
