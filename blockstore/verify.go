package blockstore

import (
	"context"
	"errors"
	"fmt"

	bstore "github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// ErrCorrupt means a stored block does not hash to its CID.
var ErrCorrupt = errors.New("stored block does not match its CID")

// verifying re-hashes every block it reads, so a block corrupted on disk
// is reported (naming its CID) instead of being used or sent.
type verifying struct {
	bstore.Blockstore
}

func (v verifying) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	b, err := v.Blockstore.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := Verify(b); err != nil {
		return nil, err
	}
	return b, nil
}

// Verify checks that b's data hashes to its CID.
func Verify(b blocks.Block) error {
	again, err := b.Cid().Prefix().Sum(b.RawData())
	if err != nil {
		return fmt.Errorf("block %s: %w", b.Cid(), err)
	}
	if !again.Equals(b.Cid()) {
		return fmt.Errorf("block %s: %w", b.Cid(), ErrCorrupt)
	}
	return nil
}
