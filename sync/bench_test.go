package sync

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

// BenchmarkFullImport imports the tree named by IPFS_SYNC_BENCH_TREE (for
// example one made by `go run ./internal/mirrorgen/cmd/mkmirror gen --preset
// small DIR`) into a fresh repository, copying its bytes and, as --nocopy,
// referencing them; run with -cpuprofile/-memprofile to see where a full
// import goes. `make bench` measures the binary end to end against kubo.
func BenchmarkFullImport(b *testing.B) {
	src, p := benchTree(b)
	for _, nocopy := range []bool{false, true} {
		b.Run(map[bool]string{false: "copy", true: "nocopy"}[nocopy], func(b *testing.B) {
			for b.Loop() {
				store, err := blockstore.Open(filepath.Join(b.TempDir(), "repo"))
				if err != nil {
					b.Fatal(err)
				}
				sum, err := Run(context.Background(), store, Options{Src: src, Profile: p, NoCopy: nocopy})
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(sum.Bytes)
				store.Close()
			}
		})
	}
}

// BenchmarkResync re-syncs IPFS_SYNC_BENCH_TREE, unchanged, against the
// root of one full import: the cost of a publish cycle that touched
// nothing, which is the walk, the quick check and the index.
func BenchmarkResync(b *testing.B) {
	src, p := benchTree(b)
	store, err := blockstore.Open(filepath.Join(b.TempDir(), "repo"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if _, err := Run(context.Background(), store, Options{Src: src, Profile: p}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sum, err := Run(context.Background(), store, Options{Src: src, Profile: p})
		if err != nil {
			b.Fatal(err)
		}
		if sum.BytesRead != 0 {
			b.Fatalf("an unchanged re-sync read %d bytes", sum.BytesRead)
		}
	}
}

// benchTree is the tree named by IPFS_SYNC_BENCH_TREE (the benchmark is
// skipped without one) and the default profile.
func benchTree(b *testing.B) (string, profile.Profile) {
	src := os.Getenv("IPFS_SYNC_BENCH_TREE")
	if src == "" {
		b.Skip("set IPFS_SYNC_BENCH_TREE to a directory to import")
	}
	p, err := profile.New(profile.V1_2025, profile.Overrides{})
	if err != nil {
		b.Fatal(err)
	}
	return src, p
}
