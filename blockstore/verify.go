package blockstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bstore "github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"github.com/zeebo/xxh3"
)

// ErrCorrupt means a stored block does not hash to its CID, or not to
// the sum written with it.
var ErrCorrupt = errors.New("stored block does not match its CID")

// errSum is ErrCorrupt found by the sum.
var errSum = fmt.Errorf("%w (its bytes do not match the checksum written with them)", ErrCorrupt)

// Every block read from a pack is checked before it is used or sent, so
// that one corrupted on disk is reported (naming its CID) instead. The
// check is the block's sum, xxh3-64, written into the index with the
// record: about ten times cheaper than SHA-256, and as sure to catch what
// a disk does to bytes (flipped bits, torn or misplaced writes, zeroed
// sectors: a random change escapes it with odds of 2^-64). A sum does
// not prove that a block hashes to its CID, which only a writer's own
// bug could break: fsck checks that (thorough reads, both checks), as a
// pull does on its side for every block it receives. Blocks of a version
// 1 index have no sum and are checked by their CID's hash.

// check checks the data of the block with multihash h read from l.
func (l loc) check(h mh.Multihash, data []byte, thorough bool) error {
	if l.sum != 0 {
		if xxh3.Hash(data) != l.sum {
			return errSum
		}
		if !thorough {
			return nil
		}
	}
	return checkHash(h, data)
}

// checkHash checks that data hashes to h.
func checkHash(h mh.Multihash, data []byte) error {
	d, err := mh.Decode(h)
	if err != nil {
		return err
	}
	again, err := mh.Sum(data, d.Code, d.Length)
	if err != nil {
		return err
	}
	if !bytes.Equal(again, h) {
		return ErrCorrupt
	}
	return nil
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

// ReadBlock returns the data of the block c, read into buf when it has
// room (else into a new buffer), checked as every read is (by its sum,
// or its CID's hash): the gateway's path to a file's leaves, without
// the Block a Blockstore's Get allocates for each. A block the store
// lacks is an ipld.ErrNotFound.
func (s *Store) ReadBlock(ctx context.Context, c cid.Cid, buf []byte) ([]byte, error) {
	if c.Prefix().MhType == mh.IDENTITY {
		d, err := mh.Decode(c.Hash())
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", c, err)
		}
		return append(buf[:0], d.Digest...), nil
	}
	return s.packs.read(c, buf, false)
}

// blockReader is the store's Blockstore with ReadBlock, which the
// gateway looks for to serve files without a Block per leaf.
type blockReader struct {
	bstore.Blockstore
	s *Store
}

func (b blockReader) ReadBlock(ctx context.Context, c cid.Cid, buf []byte) ([]byte, error) {
	return b.s.ReadBlock(ctx, c, buf)
}

// readThorough is Blockstore().Get checking the block by its CID's hash
// as well as by its sum (fsck).
func (s *Store) readThorough(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if c.Prefix().MhType == mh.IDENTITY {
		return s.bs.Get(ctx, c)
	}
	data, err := s.packs.read(c, nil, true)
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}
