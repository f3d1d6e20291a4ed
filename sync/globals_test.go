package sync_test

// Globals: boxo keeps import defaults in process-wide variables (chunk size,
// file DAG width, HAMT threshold, estimation mode and fanout). ipfs-sync
// must take every CID-relevant setting from its Profile, so setting those
// globals to nonsense must not change a single CID.
//
// merkledag.DefaultPBNodeFieldOrder is left alone: boxo v0.43.0 has no
// per-node override for the dag-pb field order, so every dag-pb encoder in
// the process, ipfs-sync's included, necessarily follows it.

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	chunk "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/boxo/ipld/unixfs/private/linksize"
	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/profile"
)

// poisonGlobals sets boxo's import globals to values that would change
// CIDs if anything read them, and restores them when t ends.
func poisonGlobals(t *testing.T, blockSize int64, linksPerBlock, shardingSize int, est uio.SizeEstimationMode, shardWidth int, linkSize int) {
	t.Helper()
	oldBlockSize := chunk.DefaultBlockSize
	oldLinks := helpers.DefaultLinksPerBlock
	oldSharding := uio.HAMTShardingSize
	oldEst := uio.HAMTSizeEstimation
	oldWidth := uio.DefaultShardWidth
	oldLinkSize := linksize.LinkSizeFunction
	t.Cleanup(func() {
		chunk.DefaultBlockSize = oldBlockSize
		helpers.DefaultLinksPerBlock = oldLinks
		uio.HAMTShardingSize = oldSharding
		uio.HAMTSizeEstimation = oldEst
		uio.DefaultShardWidth = oldWidth
		linksize.LinkSizeFunction = oldLinkSize
	})
	chunk.DefaultBlockSize = blockSize
	helpers.DefaultLinksPerBlock = linksPerBlock
	uio.HAMTShardingSize = shardingSize
	uio.HAMTSizeEstimation = est
	uio.DefaultShardWidth = shardWidth
	linksize.LinkSizeFunction = func(string, cid.Cid) int { return linkSize }

	// The poison is live: boxo's own default splitter now cuts blockSize chunks.
	spl, err := chunk.FromString(bytes.NewReader(make([]byte, 3*blockSize)), "")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := spl.NextBytes(); err != nil || int64(len(b)) != blockSize {
		t.Fatalf("poisoned default splitter gave %d bytes (%v), want %d", len(b), err, blockSize)
	}
}

// globalsTree writes a tree with a directory over the profile's own HAMT
// threshold (the IPIP-499 fixture of TestKnownAnswerIPIP499), a small
// directory that must stay basic, and files of several chunks and, with a
// small chunker, several levels.
func globalsTree(t testing.TB, dir string, p profile.Profile, hamtFixture func(testing.TB, string) string) string {
	root := filepath.Join(dir, "src")
	fxMkdir(t, root, 0o755)
	hamtFixture(t, root) // root/<seed>/…
	cs := p.ChunkSize()
	for i, n := range []int64{cs - 1, cs + 1, 3*cs + 17, 9*cs + 5} {
		data, err := io.ReadAll(randomData(n, fmt.Sprint("globals", i)))
		if err != nil {
			t.Fatal(err)
		}
		fxWrite(t, filepath.Join(root, "files", fmt.Sprintf("f%d", i)), data, 0o644)
	}
	fxWrite(t, filepath.Join(root, "small", "a"), []byte("a\n"), 0o600)
	fxSymlink(t, "a", filepath.Join(root, "small", "link"))
	return root
}

// allCIDs is every entry's CID by path, plus every block under the root
// (intermediate file nodes and HAMT shards included) under "#blocks".
func allCIDs(t testing.TB, src string, p profile.Profile) (map[string]string, bool) {
	t.Helper()
	root, store := fxImport(t, src, p)
	out := map[string]string{}
	hamt := false
	for path, e := range dagList(t, store.Blockstore(), root) {
		out[path] = e.Cid.String()
		hamt = hamt || e.HAMT
	}
	var blocks []string
	_ = reachable(t, store.Blockstore(), root).ForEach(func(c cid.Cid) error {
		blocks = append(blocks, c.String())
		return nil
	})
	slices.Sort(blocks)
	out["#blocks"] = fmt.Sprint(len(blocks), " ", strings.Join(blocks, ","))
	return out, hamt
}

// TestGlobalsDoNotChangeCIDs must not run in parallel with other tests: it
// changes process-wide variables (its subtests run in parallel only with
// each other, while the poison is in place).
func TestGlobalsDoNotChangeCIDs(t *testing.T) {
	type variant struct {
		name string
		p    profile.Profile
		hamt func(testing.TB, string) string
		dir  string // the HAMT fixture's directory name (its seed)
		want string // the HAMT fixture's known CID (TestKnownAnswerIPIP499)
	}
	variants := []variant{
		{"v1-2025-mode-mtime", fxProfile(t, v1, profile.Overrides{}),
			kuboHAMT(4766, 11, 22, "hamt-unixfs-v1-2025"), "hamt-unixfs-v1-2025", ""},
		{"v0-2015", fxProfile(t, v0, profile.Overrides{Metadata: ptr("none")}),
			kuboHAMT(4033, 31, 31, "hamt-unixfs-v0-2015"), "hamt-unixfs-v0-2015", "QmeMiJzmhpJAUgynAcxTQYek5PPKgdv3qEvFsdV3XpVnvP"},
		// Explicit overrides: files several levels deep, a small HAMT.
		{"v1-2025-small-chunks-4-links", fxProfile(t, v1, profile.Overrides{Chunker: ptr("size-1000"), MaxFileLinks: ptr(4), HAMTThreshold: ptr(2000), MaxHAMTFanout: ptr(32)}),
			kuboHAMT(200, 11, 11, "hamt-small"), "hamt-small", ""},
	}
	srcs := make([]string, len(variants))
	for i := range srcs {
		srcs[i] = t.TempDir() // outlives the subtests
	}
	before := make([]map[string]string, len(variants))
	t.Run("before", func(t *testing.T) {
		for i, v := range variants {
			t.Run(v.name, func(t *testing.T) {
				t.Parallel()
				srcs[i] = globalsTree(t, srcs[i], v.p, v.hamt)
				var hamt bool
				before[i], hamt = allCIDs(t, srcs[i], v.p)
				if !hamt {
					t.Errorf("the tree has no HAMT directory; the HAMT globals are not exercised")
				}
			})
		}
	})
	if t.Failed() {
		return
	}
	for _, poison := range []struct {
		name            string
		blockSize       int64
		links, sharding int
		est             uio.SizeEstimationMode
		width, linkSize int
	}{
		// Everything small: tiny chunks and nodes, shard every directory,
		// and the links-bytes estimate (unixfs-v1-2025 uses block-bytes).
		{"tiny", 1234, 3, 1, uio.SizeEstimationLinks, 8, 1 << 20},
		// Everything large: huge chunks and nodes, never shard by size, and
		// the block-bytes estimate (unixfs-v0-2015 uses links-bytes).
		{"huge", 8 << 20, 1 << 16, 1 << 40, uio.SizeEstimationBlock, 1024, 0},
	} {
		t.Run(poison.name, func(t *testing.T) {
			poisonGlobals(t, poison.blockSize, poison.links, poison.sharding, poison.est, poison.width, poison.linkSize)
			for i, v := range variants {
				t.Run(v.name, func(t *testing.T) {
					t.Parallel()
					after, _ := allCIDs(t, srcs[i], v.p)
					if v.want != "" {
						if got := after[v.dir]; got != v.want {
							t.Errorf("HAMT fixture = %s, want %s", got, v.want)
						}
					}
					for path, c := range before[i] {
						if after[path] != c {
							if path == "#blocks" {
								t.Errorf("the set of blocks under the root changed")
								continue
							}
							t.Errorf("%q: CID %s before poisoning, %s after", path, c, after[path])
						}
					}
					if len(after) != len(before[i]) {
						t.Errorf("%d entries after poisoning, %d before", len(after), len(before[i]))
					}
				})
			}
		})
	}
}
