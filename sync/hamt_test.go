package sync

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/internal/testtier"
)

// TestHugeFlatDirectoryOneEntry adds one entry to a flat directory of
// thousands (a PyPI-style directory of wheels): the update writes the new
// file and the few HAMT shards on its path, not the whole directory.
func TestHugeFlatDirectoryOneEntry(t *testing.T) {
	// With wheel-length names, 2,800 entries are about the fewest that
	// unixfs-v1-2025's 256 KiB threshold shards; each is a file created,
	// the test's main cost.
	n := testtier.Size(3000, 3000, 10000)
	src := t.TempDir()
	flat := filepath.Join(src, "simple")
	if err := os.Mkdir(flat, 0o755); err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1_600_000_000, 0)
	for i := range n {
		p := filepath.Join(flat, fmt.Sprintf("package%05d-1.0.0-py3-none-manylinux_2_17_x86_64.whl", i))
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, old, old)
	}
	store, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	opts := Options{Src: src, Name: "flat", Profile: incProfile(t, "mtime,mode")}
	first, err := Run(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	if first.BlocksWritten <= int64(n)+2 {
		t.Fatalf("%d blocks for %d files: the directory was not sharded, so the test tests nothing", first.BlocksWritten, n)
	}
	if err := os.WriteFile(filepath.Join(flat, "package-new"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	second, err := Run(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The new file, two or three shard levels, the top directory.
	if second.BlocksWritten > 6 {
		t.Fatalf("one new entry wrote %d blocks (first run: %d)", second.BlocksWritten, first.BlocksWritten)
	}
	opts.Full, opts.Name = true, "full"
	full, err := Run(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	if full.Root != second.Root {
		t.Fatalf("incremental %s, full %s", second.Root, full.Root)
	}
	t.Logf("%d entries: first run %d blocks, one more entry %d blocks", n, first.BlocksWritten, second.BlocksWritten)
}
