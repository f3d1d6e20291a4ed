package sync

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/chunker"
)

// secret is the content of the files outside the source that a swapped-in
// symlink points at (/etc in the attack this stands for).
const secret = "secret bytes outside the source"

// swapTrees makes a source with pool/{main/passwd,shadow} and, outside it,
// a directory of the same shape holding the secret.
func swapTrees(t *testing.T) (src, outside string) {
	t.Helper()
	src, outside = t.TempDir(), t.TempDir()
	for _, p := range []string{"pool/main/passwd", "pool/shadow"} {
		for dir, content := range map[string]string{src: "public " + p, outside: secret} {
			full := filepath.Join(dir, strings.TrimPrefix(p, "pool/"))
			if dir == src {
				full = filepath.Join(dir, p)
			}
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return src, outside
}

// swapPool replaces src/pool by a symlink to outside, keeping the
// directory as pool.old.
func swapPool(t *testing.T, src, outside string) {
	if err := os.Rename(filepath.Join(src, "pool"), filepath.Join(src, "pool.old")); err != nil {
		t.Error(err)
		return
	}
	if err := os.Symlink(outside, filepath.Join(src, "pool")); err != nil {
		t.Error(err)
	}
}

// assertNoSecret fails if the secret's bytes are anywhere in the packs of
// the repository repo.
func assertNoSecret(t *testing.T, repo string) {
	t.Helper()
	packs, err := filepath.Glob(filepath.Join(repo, "packs", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range packs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Fatalf("a file outside the source was imported (its bytes are in %s)", p)
		}
	}
}

// TestSymlinkSwappedInBeforeOpen: pool/ is replaced by a symlink to a
// directory outside the source after its listing, before its changed
// files are opened. Nothing from outside is imported: each file is opened
// in the directory the walk listed, which still holds the files listed.
func TestSymlinkSwappedInBeforeOpen(t *testing.T) {
	ctx := context.Background()
	src, outside := swapTrees(t)
	repo := t.TempDir()
	store, err := blockstore.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var once gosync.Once
	opts := Options{Src: src, Name: "swap", Profile: incProfile(t, "mtime,mode"), Workers: 1,
		Open: func(s chunker.Source) (chunker.File, error) {
			once.Do(func() { swapPool(t, src, outside) })
			return chunker.OpenAt(s)
		}}
	sum, err := Run(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, repo)
	if sum.Files != 2 {
		t.Fatalf("%d files imported, want the 2 listed", sum.Files)
	}
}

// TestSymlinkSwapsDuringSyncs: pool/ keeps being swapped for a symlink to
// a directory outside the source and back while syncs run, so that the
// swap falls between a listing and the open of a subdirectory or a file
// in every way the walk allows. Runs may fail or skip what they could not
// read; none imports anything from outside.
func TestSymlinkSwapsDuringSyncs(t *testing.T) {
	ctx := context.Background()
	src, outside := swapTrees(t)
	for i := range 40 {
		// More directories, so that pool's is walked by a walker of its
		// own as well as by its parent's.
		if err := os.MkdirAll(filepath.Join(src, "d", strings.Repeat("x", i%7+1), "y"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	repo := t.TempDir()
	store, err := blockstore.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	stop := make(chan struct{})
	var flips gosync.WaitGroup
	flips.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			swapPool(t, src, outside)
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
			os.Remove(filepath.Join(src, "pool"))
			if err := os.Rename(filepath.Join(src, "pool.old"), filepath.Join(src, "pool")); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		}
	})
	defer func() { close(stop); flips.Wait() }()
	for i := range 60 {
		// --full: every file is read on every run.
		opts := Options{Src: src, Name: "swap", Profile: incProfile(t, "mtime,mode"), Full: true, Workers: 2, Warn: func(string, error) {}}
		Run(ctx, store, opts)
		if t.Failed() {
			t.Fatalf("run %d", i)
		}
		assertNoSecret(t, repo)
	}
}
