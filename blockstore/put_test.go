package blockstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	blocks "github.com/ipfs/go-block-format"
)

// Blocks written by blockFiles are flatfs's own: readable, listed, and
// written once when two goroutines race on one block; no temporary file
// is left, in both the O_TMPFILE and the temporary-name mode.
func TestBlockFilesAreFlatfsBlocks(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(map[bool]string{false: "tmpfile", true: "link"}[plain], func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.files.plain.Store(plain)
			var bs []blocks.Block
			for i := range 200 {
				bs = append(bs, blocks.NewBlock([]byte(strings.Repeat("x", i))))
			}
			var wg sync.WaitGroup
			created := make([][]bool, 2)
			for g := range created {
				wg.Go(func() {
					for _, b := range bs {
						ok, err := s.files.put(b.Cid(), b.RawData())
						if err != nil {
							t.Error(err)
						}
						created[g] = append(created[g], ok)
					}
				})
			}
			wg.Wait()
			for i, b := range bs {
				if created[0][i] == created[1][i] {
					t.Errorf("block %d: created by both or neither (%v, %v)", i, created[0][i], created[1][i])
				}
				got, err := s.Blockstore().Get(ctx, b.Cid())
				if err != nil || string(got.RawData()) != string(b.RawData()) {
					t.Fatalf("block %d read back: %v", i, err)
				}
			}
			keys, err := s.Blockstore().AllKeysChan(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for range keys {
				n++
			}
			if n != len(bs) {
				t.Errorf("flatfs lists %d blocks, want %d", n, len(bs))
			}
			filepath.WalkDir(filepath.Join(dir, "blocks"), func(p string, d os.DirEntry, err error) error {
				if err == nil && strings.HasPrefix(d.Name(), "put-") {
					t.Errorf("temporary file left: %s", p)
				}
				return nil
			})
		})
	}
}
