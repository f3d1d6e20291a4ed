package export

import (
	"context"
	"fmt"
	"io"
	"os"

	bstore "github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/go-cid"
)

// DeltaFile writes to path, as a CARv1 rooted at root, the blocks under
// root that are not under old (every block under root when old is
// cid.Undef): what `ipfs dag import` needs on a node that holds old. It
// is sync --car's file. Which blocks a run happened to write is not the
// answer: a block the repository held before (under another ref, or an
// older version) is new to a node that follows this ref.
func DeltaFile(ctx context.Context, bs bstore.Blockstore, old, root cid.Cid, path string) (Stats, error) {
	return ToFile(path, func(w io.Writer) (Stats, error) { return CARSince(ctx, bs, old, root, w) })
}

// ToFile creates path and has write fill it; the file is durable when
// ToFile returns, and removed on any error: a CAR cut short is no CAR.
func ToFile(path string, write func(io.Writer) (Stats, error)) (st Stats, err error) {
	f, err := os.Create(path)
	if err != nil {
		return Stats{}, fmt.Errorf("create CAR: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if st, err = write(f); err != nil {
		return st, fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return st, fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return st, fmt.Errorf("write %s: %w", path, err)
	}
	return st, nil
}
