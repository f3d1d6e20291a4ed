package blockstore

import (
	"context"
	"fmt"
	"sync"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// batchBytes bounds the memory a Writer holds before it commits a batch.
const batchBytes = 8 << 20

// Writer is an ipld.DAGService that writes new blocks in byte-bounded
// batches and counts them. Blocks already in the store are not rewritten.
// It is safe for concurrent use by the chunker's workers.
type Writer struct {
	s       *Store
	discard bool

	mu      sync.Mutex
	pending []blocks.Block
	inBatch map[cid.Cid]struct{}
	size    int
	err     error
	// The batch being committed, still visible to Get and duplicate checks.
	flight    []blocks.Block
	flightSet map[cid.Cid]struct{}
	commitMu  sync.Mutex // one commit at a time

	Blocks int64 // new blocks written
	Bytes  int64 // bytes of new blocks written

	// Tee, when set, also receives every new block, one call at a time:
	// sync --car writes the run's delta through it.
	Tee func(context.Context, blocks.Block) error
	// OnNew, when set, is called for every new block (progress).
	OnNew func()
}

// NewWriter starts a batch writer on s. A discarding writer (for dry
// runs) counts what it would write and stores nothing.
func (s *Store) NewWriter(discard bool) *Writer {
	return &Writer{s: s, discard: discard, inBatch: map[cid.Cid]struct{}{}}
}

// Add implements ipld.DAGService.
func (w *Writer) Add(ctx context.Context, nd ipld.Node) error {
	return w.Put(ctx, nd)
}

// AddMany implements ipld.DAGService.
func (w *Writer) AddMany(ctx context.Context, nds []ipld.Node) error {
	for _, nd := range nds {
		if err := w.Put(ctx, nd); err != nil {
			return err
		}
	}
	return nil
}

// Put queues one block, committing the batch when it is full.
func (w *Writer) Put(ctx context.Context, b blocks.Block) error {
	c := b.Cid()
	if c.Prefix().MhType == mh.IDENTITY {
		return nil
	}
	has, err := w.s.bs.Has(ctx, c)
	if err != nil {
		return fmt.Errorf("block store %s: %w", w.s.dir, err)
	}
	if has {
		return nil
	}
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		return w.err
	}
	_, dup := w.inBatch[c]
	_, flying := w.flightSet[c]
	if dup || flying {
		w.mu.Unlock()
		return nil
	}
	w.Blocks++
	w.Bytes += int64(len(b.RawData()))
	if w.OnNew != nil {
		w.OnNew()
	}
	if w.Tee != nil {
		if err := w.Tee(ctx, b); err != nil {
			w.err = err
			w.mu.Unlock()
			return err
		}
	}
	if w.discard {
		w.mu.Unlock()
		return nil
	}
	w.inBatch[c] = struct{}{}
	w.pending = append(w.pending, b)
	w.size += len(b.RawData())
	if w.size < batchBytes {
		w.mu.Unlock()
		return nil
	}
	batch, set := w.takeLocked()
	w.mu.Unlock()
	// Committed without holding mu: the other workers keep filling the
	// next batch meanwhile.
	return w.commit(ctx, batch, set)
}

func (w *Writer) takeLocked() ([]blocks.Block, map[cid.Cid]struct{}) {
	batch, set := w.pending, w.inBatch
	w.pending, w.inBatch, w.size = nil, map[cid.Cid]struct{}{}, 0
	return batch, set
}

func (w *Writer) commit(ctx context.Context, batch []blocks.Block, set map[cid.Cid]struct{}) error {
	if len(batch) == 0 {
		return nil
	}
	w.commitMu.Lock()
	defer w.commitMu.Unlock()
	w.mu.Lock()
	w.flight, w.flightSet = batch, set
	w.mu.Unlock()
	err := w.s.bs.PutMany(ctx, batch)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flight, w.flightSet = nil, nil
	if err != nil {
		w.err = fmt.Errorf("write blocks to %s: %w", w.s.dir, err)
		return w.err
	}
	return w.err
}

// Flush commits what is queued and makes every block written durable.
func (w *Writer) Flush(ctx context.Context) error {
	if w.discard {
		return nil
	}
	w.mu.Lock()
	batch, set := w.takeLocked()
	w.mu.Unlock()
	if err := w.commit(ctx, batch, set); err != nil {
		return err
	}
	return w.s.Sync(ctx)
}

// Get implements ipld.DAGService, seeing queued blocks too.
func (w *Writer) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	w.mu.Lock()
	for _, batch := range [][]blocks.Block{w.pending, w.flight} {
		for _, b := range batch {
			if b.Cid().Equals(c) {
				w.mu.Unlock()
				return decode(b)
			}
		}
	}
	w.mu.Unlock()
	b, err := w.s.bs.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	return decode(b)
}

func decode(b blocks.Block) (ipld.Node, error) {
	switch b.Cid().Prefix().Codec {
	case cid.DagProtobuf:
		return mdag.DecodeProtobufBlock(b)
	case cid.Raw:
		return mdag.DecodeRawBlock(b)
	}
	return nil, fmt.Errorf("block %s: codec %#x is not UnixFS", b.Cid(), b.Cid().Prefix().Codec)
}

// GetMany implements ipld.DAGService.
func (w *Writer) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	for _, c := range cs {
		nd, err := w.Get(ctx, c)
		out <- &ipld.NodeOption{Node: nd, Err: err}
	}
	close(out)
	return out
}

// Remove implements ipld.DAGService; a sync never removes blocks.
func (w *Writer) Remove(context.Context, cid.Cid) error {
	return fmt.Errorf("blockstore.Writer does not remove blocks")
}

// RemoveMany implements ipld.DAGService.
func (w *Writer) RemoveMany(context.Context, []cid.Cid) error {
	return fmt.Errorf("blockstore.Writer does not remove blocks")
}
