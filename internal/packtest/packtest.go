// Package packtest damages a repository's pack files for the tests that
// check a corrupt stored block is never served, pulled or passed by fsck.
package packtest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Flip XORs mask into the byte at 'at' of data, which must be in exactly
// one pack file of the repository repo; the test fails otherwise, so a
// corruption that missed its block cannot pass unnoticed.
func Flip(t testing.TB, repo string, data []byte, at int, mask byte) {
	t.Helper()
	packs, err := filepath.Glob(filepath.Join(repo, "packs", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, p := range packs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(b, data)
		if i < 0 {
			continue
		}
		found++
		b[i+at] ^= mask
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if found != 1 {
		t.Fatalf("the block's bytes are in %d packs, want 1", found)
	}
}
