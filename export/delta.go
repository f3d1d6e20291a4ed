package export

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

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

// ToFile has write fill the file at path. A new or regular file is
// written under a temporary name beside it, made durable and renamed into
// place, so that a CAR cut short never takes its place (nor removes what
// was there). Anything else at path, a device such as /dev/null, a pipe
// or a symlink, is written as it is and never removed.
func ToFile(path string, write func(io.Writer) (Stats, error)) (Stats, error) {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return Stats{}, fmt.Errorf("open %s: %w", path, err)
		}
		st, err := write(f)
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return st, fmt.Errorf("write %s: %w", path, err)
		}
		return st, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return Stats{}, fmt.Errorf("create CAR: %w", err)
	}
	defer os.Remove(f.Name()) // fails once renamed
	st, err := write(f)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return st, fmt.Errorf("write %s: %w", path, err)
	}
	return st, nil
}
