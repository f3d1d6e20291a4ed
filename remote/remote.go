// Package remote owns reading a root that lives on the target and not in
// the repository: a runner that keeps nothing between runs (a CI job
// without a cache) diffs against the root the target holds and sends only
// what is new. Blocks come from a kubo node's RPC (block/get) or a
// trustless gateway (?format=raw), each checked against its CID, fetched
// only when first asked for, and handed to a keeper (a sync keeps them in
// the repository, so that a rerun reads them there). It also finds which
// root the target holds under a name: an MFS path or an IPNS key.
package remote

import (
	"context"
	"errors"
	"fmt"
	gosync "sync"

	bstore "github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// MaxBlockSize is the largest block a source may answer with: kubo's own
// limit on a block it accepts (2 MiB), so nothing larger is a block of a
// DAG kubo holds.
const MaxBlockSize = 2 << 20

// Source reads the bytes of one block from a target. They are not
// trusted: Blockstore checks them against the CID.
type Source interface {
	Block(ctx context.Context, c cid.Cid) ([]byte, error)
	// String names the target in messages and summaries.
	String() string
}

// ErrNotFound means the target does not hold the block.
var ErrNotFound = errors.New("not on the target")

// Target is where a root goes, seen as a place to read the previous root
// from: its blocks (Source), and Previous, which finds the root it holds
// for the ref called name (at an MFS path, under an IPNS key, as the
// cluster's or pinning service's pin of that name), or cid.Undef when it
// holds none. Previous may
// be nil: then only a root named by the caller (--base) is read there.
type Target struct {
	Source   Source
	Previous func(ctx context.Context, name string) (cid.Cid, error)
}

// Blockstore reads blocks from the local store and, when it lacks one,
// from the source: each fetched block is checked against its CID, fetched
// once however many ask for it at the same time, and given to keep (nil:
// not kept). Everything else (Has, Put, ...) is the local store's.
type Blockstore struct {
	bstore.Blockstore
	src  Source
	keep func(ctx context.Context, c cid.Cid, data []byte) error

	mu       gosync.Mutex
	inFlight map[cid.Cid]*fetch
}

type fetch struct {
	done chan struct{}
	b    blocks.Block
	err  error
}

// New layers src under local; keep, when not nil, receives every block
// fetched, verified.
func New(local bstore.Blockstore, src Source, keep func(ctx context.Context, c cid.Cid, data []byte) error) *Blockstore {
	return &Blockstore{Blockstore: local, src: src, keep: keep, inFlight: map[cid.Cid]*fetch{}}
}

// Source is the target the blocks come from.
func (b *Blockstore) Source() Source { return b.src }

// Get returns the block c from the local store, else from the source.
func (b *Blockstore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	blk, err := b.Blockstore.Get(ctx, c)
	if err == nil || !ipld.IsNotFound(err) {
		return blk, err
	}
	b.mu.Lock()
	f, ok := b.inFlight[c]
	if !ok {
		f = &fetch{done: make(chan struct{})}
		b.inFlight[c] = f
	}
	b.mu.Unlock()
	if ok {
		select {
		case <-f.done:
			return f.b, f.err
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	f.b, f.err = b.fetch(ctx, c)
	close(f.done)
	b.mu.Lock()
	delete(b.inFlight, c)
	b.mu.Unlock()
	return f.b, f.err
}

// GetSize is Get's size: a block not held here is fetched.
func (b *Blockstore) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	n, err := b.Blockstore.GetSize(ctx, c)
	if err == nil || !ipld.IsNotFound(err) {
		return n, err
	}
	blk, err := b.Get(ctx, c)
	if err != nil {
		return -1, err
	}
	return len(blk.RawData()), nil
}

func (b *Blockstore) fetch(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	data, err := b.src.Block(ctx, c)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			// Callers tell a missing block from a failure by this type.
			return nil, fmt.Errorf("%s: %w: %w", b.src, ipld.ErrNotFound{Cid: c}, err)
		}
		return nil, fmt.Errorf("%s: block %s: %w", b.src, c, err)
	}
	blk, err := Verify(c, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.src, err)
	}
	if b.keep != nil {
		if err := b.keep(ctx, c, data); err != nil {
			return nil, fmt.Errorf("keep block %s from %s: %w", c, b.src, err)
		}
	}
	return blk, nil
}

// ErrBadBlock means a target answered with bytes that do not hash to the
// CID asked for.
var ErrBadBlock = errors.New("bytes do not match the CID")

// Verify is data as the block c, if it hashes to c.
func Verify(c cid.Cid, data []byte) (blocks.Block, error) {
	sum, err := c.Prefix().Sum(data)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", c, err)
	}
	if !sum.Equals(c) {
		return nil, fmt.Errorf("block %s: %w", c, ErrBadBlock)
	}
	return blocks.NewBlockWithCid(data, c)
}
