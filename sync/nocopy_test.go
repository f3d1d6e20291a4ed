package sync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/internal/testtier"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

// TestNoCopyIncrementalEqualsFull applies random mirror mutations and
// checks after every step that an incremental --nocopy sync gives the
// root a fresh copying import gives, that the new root reads whole
// (fsck: nothing missing, corrupt or unavailable), that older roots
// never read wrong (only unavailable, and never under a --copy file),
// and that gc keeps all of that.
func TestNoCopyIncrementalEqualsFull(t *testing.T) {
	steps := testtier.Size(15, 40, 200)
	mk := func(name string, o profile.Overrides) profile.Profile {
		// Narrow DAGs, so files have inner nodes.
		width, hamt := 3, 600
		o.MaxFileLinks, o.HAMTThreshold = &width, &hamt
		return nocopyProfile(t, name, o)
	}
	none := "none"
	for name, p := range map[string]profile.Profile{
		"v1-meta": mk(profile.V1_2025, profile.Overrides{}),
		"v1-none": mk(profile.V1_2025, profile.Overrides{Metadata: &none}),
		"v0-meta": mk(profile.V0_2015, profile.Overrides{}),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runNoCopyProperty(t, p, uint64(len(name))*104729+3, steps)
		})
	}
}

// nocopyProfile is profile name with o and chunks of 1 KiB, over
// chunker.MinRefLen, so that leaves are references.
func nocopyProfile(t *testing.T, name string, o profile.Overrides) profile.Profile {
	t.Helper()
	chunk := "size-1024"
	o.Chunker = &chunk
	p, err := profile.New(name, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func runNoCopyProperty(t *testing.T, p profile.Profile, seed uint64, steps int) {
	ctx := context.Background()
	src, inc, full := propertyStores(t)
	// Names ending in 3 are copied (--copy): files that change in place.
	copyRule, err := diff.ParseRule("n??3-*", false)
	if err != nil {
		t.Fatal(err)
	}
	m := &mutator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), root: src, t: t,
		sizes: []int{0, 100, 511, 512, 1023, 1024, 1025, 3000, 3072, 5000, 9000}}
	for range 8 {
		m.addFile()
	}
	var log []string
	var roots []cid.Cid
	var reused, unavailable int64
	for step := 0; step < steps; step++ {
		op := m.step()
		log = append(log, op)
		opts := Options{Src: src, Name: "mirror", Profile: p, Filter: diff.Filter{Hidden: true}, Workers: 2,
			NoCopy: true, Copy: []diff.Rule{copyRule}}
		got, err := Run(ctx, inc, opts)
		if err != nil {
			t.Fatalf("step %d (%s): incremental: %v", step, op, err)
		}
		reused += got.FileChanges.Unchanged
		opts.Full, opts.NoCopy, opts.Copy = true, false, nil
		want, err := Run(ctx, full, opts)
		if err != nil {
			t.Fatalf("step %d (%s): full: %v", step, op, err)
		}
		fail := func(format string, a ...any) {
			t.Helper()
			tail := log[max(0, len(log)-10):]
			t.Fatalf("step %d: %s\nlast operations:\n  %s", step, fmt.Sprintf(format, a...), strings.Join(tail, "\n  "))
		}
		if got.Root != want.Root {
			fail("incremental --nocopy root %s != full import %s", got.Root, want.Root)
		}
		root := cid.MustParse(got.Root)
		roots = append(roots, root)
		if step%10 == 9 {
			if _, err := inc.GC(ctx, roots); err != nil {
				fail("gc: %v", err)
			}
		}
		res, err := inc.Fsck(ctx, []cid.Cid{root}, false, func(c cid.Cid, p string, err error) {
			fail("current root: %s at %s: %v", c, p, err)
		})
		if err != nil || res.Missing+res.Corrupt+res.Unavailable != 0 {
			fail("fsck of the current root: %+v, %v", res, err)
		}
		old := roots[max(0, len(roots)-6):]
		res, err = inc.Fsck(ctx, old, false, func(c cid.Cid, p string, err error) {
			if !errors.Is(err, blockstore.ErrUnavailable) {
				fail("older root: %s at %s: %v", c, p, err)
			}
			if !(diff.Filter{Hidden: true, Rules: []diff.Rule{copyRule}}).Include(path.Base(p), path.Base(p), false) {
				fail("older root: %s at %s, a --copy file, unavailable: %v", c, p, err)
			}
		})
		if err != nil || res.Missing+res.Corrupt != 0 || inc.Damaged() {
			fail("fsck of older roots: %+v, %v", res, err)
		}
		unavailable += res.Unavailable
	}
	// Both are what the property is about: files reused unread, and
	// older roots left with references to files changed since.
	if reused == 0 || unavailable == 0 {
		t.Errorf("%d files reused unread, %d blocks of older roots unavailable: the paths under test did not run", reused, unavailable)
	}
}

// TestNoCopyTurnedOffCopiesAgain: a ref synced with --nocopy, then
// without, holds copies: its root reads whole after every source file is
// truncated. Turned on again, the next sync references the files it
// reads (here, one added), whose blocks a change then makes unavailable.
func TestNoCopyTurnedOffCopiesAgain(t *testing.T) {
	ctx := context.Background()
	p := nocopyProfile(t, profile.V1_2025, profile.Overrides{})
	src := filepath.Join(t.TempDir(), "src")
	m := &mutator{rng: rand.New(rand.NewPCG(7, 9)), root: src, t: t, sizes: []int{600, 3000, 5000}}
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		m.addFile()
	}
	store, err := blockstore.Open(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sync := func(noCopy bool) cid.Cid {
		t.Helper()
		sum, err := Run(ctx, store, Options{Src: src, Name: "m", Profile: p, Filter: diff.Filter{Hidden: true}, NoCopy: noCopy})
		if err != nil {
			t.Fatal(err)
		}
		return cid.MustParse(sum.Root)
	}
	fsck := func(root cid.Cid) blockstore.FsckResult {
		t.Helper()
		res, err := store.Fsck(ctx, []cid.Cid{root}, false, func(cid.Cid, string, error) {})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	referenced := sync(true)
	copied := sync(false)
	if !copied.Equals(referenced) {
		t.Fatalf("the copying sync of the same tree gave %s, not %s", copied, referenced)
	}
	files := m.entries(isFile)
	for _, f := range files {
		if err := os.Truncate(f, 10); err != nil {
			t.Fatal(err)
		}
	}
	if res := fsck(copied); res.Unavailable+res.Missing+res.Corrupt != 0 {
		t.Fatalf("after turning --nocopy off and truncating the sources: %+v", res)
	}

	added := filepath.Join(src, "added")
	if err := os.WriteFile(added, bytes.Repeat([]byte("new file "), 500), 0o644); err != nil {
		t.Fatal(err)
	}
	root := sync(true)
	if err := os.Truncate(added, 10); err != nil {
		t.Fatal(err)
	}
	if res := fsck(root); res.Unavailable == 0 || res.Missing+res.Corrupt != 0 {
		t.Errorf("--nocopy turned on again: the added file's blocks, its source truncated: %+v (want unavailable)", res)
	}
}

// TestNoCopyGCDropsCollected: gc of a --nocopy repository keeping only
// the current root removes the references of the root before (all its
// files were rewritten) and leaves the current root whole.
func TestNoCopyGCDropsCollected(t *testing.T) {
	ctx := context.Background()
	p := nocopyProfile(t, profile.V1_2025, profile.Overrides{})
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &mutator{rng: rand.New(rand.NewPCG(3, 4)), root: src, t: t, sizes: []int{3000, 5000}}
	for range 5 {
		m.addFile()
	}
	store, err := blockstore.Open(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	opts := Options{Src: src, Name: "m", Profile: p, Filter: diff.Filter{Hidden: true}, NoCopy: true}
	first, err := Run(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.entries(isFile) {
		m.write(f, bytes.Repeat([]byte{byte(m.rng.IntN(256))}, 4000+m.rng.IntN(100)), false)
	}
	second, err := Run(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	root := cid.MustParse(second.Root)
	res, err := store.GC(ctx, []cid.Cid{root})
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed < first.BlocksWritten-2 { // all but the two directory blocks
		t.Errorf("gc removed %d blocks; the first root wrote %d, every file of it rewritten since", res.Removed, first.BlocksWritten)
	}
	fsck, err := store.Fsck(ctx, []cid.Cid{root}, false, func(cid.Cid, string, error) {})
	if err != nil || fsck.Missing+fsck.Corrupt+fsck.Unavailable != 0 || fsck.Blocks == 0 {
		t.Errorf("fsck of the root kept: %+v, %v", fsck, err)
	}
}

// TestNoCopySourceMoved: a tree synced with --nocopy, moved, and synced
// again from its new place under the same ref name: the root (the same)
// reads whole, its files read again, not reused by their unchanged
// device, inode and change time with references to the old place.
func TestNoCopySourceMoved(t *testing.T) {
	ctx := context.Background()
	p := nocopyProfile(t, profile.V1_2025, profile.Overrides{})
	dir := t.TempDir()
	src := filepath.Join(dir, "a")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &mutator{rng: rand.New(rand.NewPCG(5, 6)), root: src, t: t, sizes: []int{3000, 5000}}
	for range 4 {
		m.addFile()
	}
	store, err := blockstore.Open(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	run := func(src string) cid.Cid {
		t.Helper()
		sum, err := Run(ctx, store, Options{Src: src, Name: "m", Profile: p, Filter: diff.Filter{Hidden: true}, NoCopy: true})
		if err != nil {
			t.Fatal(err)
		}
		return cid.MustParse(sum.Root)
	}
	old := run(src)
	moved := filepath.Join(dir, "b")
	if err := os.Rename(src, moved); err != nil {
		t.Fatal(err)
	}
	root := run(moved)
	if !root.Equals(old) {
		t.Fatalf("the moved tree's root %s is not the tree's %s", root, old)
	}
	res, err := store.Fsck(ctx, []cid.Cid{root}, false, func(cid.Cid, string, error) {})
	if err != nil || res.Missing+res.Corrupt+res.Unavailable != 0 {
		t.Errorf("fsck after the move: %+v, %v", res, err)
	}
}
