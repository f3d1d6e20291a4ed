package blockstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	dshelp "github.com/ipfs/boxo/datastore/dshelp"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	flatfs "github.com/ipfs/go-ds-flatfs"
)

// flatfsDir held the blocks, one file each in kubo's flatfs layout, in
// repositories of earlier versions.
const flatfsDir = "blocks"

// migrateFlatfs moves the blocks of an earlier version's repository into
// packs, once, when a writer opens it. The flatfs tree is removed only
// after the packs are durable; an interruption leaves it in place and the
// next writer starts again (blocks already moved are skipped).
func (s *Store) migrateFlatfs() error {
	dir := filepath.Join(s.dir, flatfsDir)
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	fds, err := flatfs.Open(dir, false)
	if err != nil {
		return fmt.Errorf("open %s to convert it: %w", dir, err)
	}
	ctx := context.Background()
	fmt.Fprintf(os.Stderr, "ipfs-sync: converting %s (one file per block) into packs; this happens once\n", dir)
	n, err := s.copyFlatfs(ctx, fds, dir)
	fds.Close()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s after converting it: %w", dir, err)
	}
	fmt.Fprintf(os.Stderr, "ipfs-sync: converted %d blocks\n", n)
	return nil
}

func (s *Store) copyFlatfs(ctx context.Context, fds *flatfs.Datastore, dir string) (int, error) {
	q, err := fds.Query(ctx, query.Query{KeysOnly: true})
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", dir, err)
	}
	defer q.Close()
	n := 0
	for e := range q.Next() {
		if e.Error != nil {
			return n, fmt.Errorf("list %s: %w", dir, e.Error)
		}
		h, err := dshelp.DsKeyToMultihash(ds.RawKey(e.Key))
		if err != nil {
			continue // not a block file
		}
		k := keyOf(h)
		if _, ok, err := s.packs.lookup(k); err != nil || ok {
			if err != nil {
				return n, err
			}
			continue
		}
		data, err := fds.Get(ctx, ds.RawKey(e.Key))
		if err == nil {
			err = s.packs.w.put(k, h, data)
		}
		if err != nil {
			return n, fmt.Errorf("convert %s: %w", dir, err)
		}
		n++
	}
	if err := s.packs.w.flush(); err != nil {
		return n, fmt.Errorf("convert %s: %w", dir, err)
	}
	return n, nil
}
