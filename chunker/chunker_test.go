package chunker

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/zeebo/xxh3"

	"github.com/ipfs-sync/ipfs-sync/profile"
)

// A file's content hash (Result.XXH) is the xxh3-64 of its bytes, as
// Checksum finds it, for a copied file of several chunks; a NoCopy
// source's is 0, not computed, and its root is the same.
func TestFileContentHash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	data := make([]byte, 3<<20+5)
	rand.NewChaCha8([32]byte{2}).Read(data)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	im := &Importer{Profile: mustProfile(t, profile.V1_2025, profile.Overrides{}), DAG: newBlockMap()}
	sum, _, _, err := im.Checksum(t.Context(), mustSource(t, path))
	if err != nil || sum != xxh3.Hash(data) {
		t.Fatalf("Checksum %x, %v; want %x", sum, err, xxh3.Hash(data))
	}
	roots := map[bool]string{}
	for _, tc := range []struct {
		name   string
		noCopy bool
		xxh    uint64
	}{
		{"copied", false, sum},
		{"referenced", true, 0},
		{"copied again, the hasher reused", false, sum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := mustSource(t, path)
			src.NoCopy = tc.noCopy
			res, err := im.File(t.Context(), src)
			if err != nil {
				t.Fatal(err)
			}
			if res.XXH != tc.xxh || res.Read != int64(len(data)) {
				t.Fatalf("XXH %x after reading %d bytes, want %x after %d", res.XXH, res.Read, tc.xxh, len(data))
			}
			roots[tc.noCopy] = res.Cid.String()
		})
	}
	if roots[true] != roots[false] {
		t.Fatalf("root %s referenced, %s copied", roots[true], roots[false])
	}
}
