package blockstore

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/chunker"
)

// Writer is an ipld.DAGService that writes new blocks straight into the
// store from the goroutine that made them, and counts them. Blocks already
// in the store are not rewritten; none is durable before Flush. It is safe
// for concurrent use by the chunker's workers.
type Writer struct {
	s       *Store
	discard bool

	mu       sync.Mutex           // held alone (lock order: packWriter)
	inFlight map[cid.Cid]struct{} // being written: a second Put skips it
	err      error

	Blocks int64 // new blocks written
	Bytes  int64 // bytes of new blocks written
	// OnNew, when set, is called for every new block (progress).
	OnNew func()
}

// NewWriter starts a writer on s. A discarding writer (for dry runs)
// counts what it would write and stores nothing.
func (s *Store) NewWriter(discard bool) *Writer {
	return &Writer{s: s, discard: discard, inFlight: map[cid.Cid]struct{}{}}
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

// Put writes one block unless the store has it.
func (w *Writer) Put(ctx context.Context, b blocks.Block) error {
	return w.PutBlock(ctx, b.Cid(), b.RawData())
}

// PutBlock is Put of a block given as its CID and bytes; the bytes are
// not kept after the call (chunker.BlockPutter).
func (w *Writer) PutBlock(ctx context.Context, c cid.Cid, data []byte) error {
	if c.Prefix().MhType == mh.IDENTITY {
		return nil
	}
	k := keyOf(c.Hash())
	has, err := w.s.packs.hasCopy(k)
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
	if _, flying := w.inFlight[c]; flying {
		w.mu.Unlock()
		return nil
	}
	w.newLocked(data)
	if w.discard {
		// Nothing remembered: a dry run's memory stays flat (a block
		// made twice in one dry run is counted twice).
		w.mu.Unlock()
		return nil
	}
	w.inFlight[c] = struct{}{}
	w.mu.Unlock()

	err = w.s.packs.w.put(k, c.Hash(), data)

	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.inFlight, c)
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("write blocks to %s: %w", w.s.dir, err)
	}
	return w.err
}

// ReserveBlock lends the place in the store where a new block of size
// bytes, with a multihash of mhLen bytes, will be written, so that its
// maker builds it there (chunker.BlockReserver): a leaf is then read
// from its file straight into the buffer the pack is written from, where
// it was otherwise copied once more. It lends none (nil) for a dry run or
// a block that would straddle two stage buffers: the caller puts the
// block as usual. A place lent is committed once, before the next
// ReserveBlock.
func (w *Writer) ReserveBlock(ctx context.Context, size, mhLen int) (chunker.Reservation, error) {
	if w.discard || mhLen > maxMHLen {
		return nil, nil
	}
	r, ok, err := w.s.packs.w.reserveRecord(recordHead + mhLen + size)
	if err != nil {
		return nil, fmt.Errorf("write blocks to %s: %w", w.s.dir, err)
	}
	if !ok {
		return nil, nil
	}
	return &reservation{w: w, ctx: ctx, r: r, data: r.b[recordHead+mhLen:]}, nil
}

// A Writer lends places for leaves; without this the importer would fall
// back, silently, to putting each one.
var _ chunker.BlockReserver = (*Writer)(nil)

// reservation is a record's place lent by ReserveBlock, for the one
// block its maker builds in data and commits.
type reservation struct {
	w    *Writer
	ctx  context.Context // ReserveBlock's, for a block stored the usual way
	r    *record
	data []byte // the block's part of r.b
}

// Bytes is where the block is built.
func (v *reservation) Bytes() []byte { return v.data }

// Commit stores the block built in Bytes under c, unless the store has
// it, and reports whether it did; Commit(cid.Undef) gives the place back.
// Either way the bytes are not the caller's after.
func (v *reservation) Commit(c cid.Cid) (bool, error) {
	return v.w.commitRecord(v.ctx, v.r, c, v.data)
}

func (w *Writer) commitRecord(ctx context.Context, r *record, c cid.Cid, data []byte) (bool, error) {
	pw := w.s.packs.w
	h := c.Hash()
	if c.Defined() && (c.Prefix().MhType == mh.IDENTITY || len(h) != len(r.b)-recordHead-len(data)) {
		// Not the block that was reserved for: stored the usual way,
		// after the place is given back (a pack being sealed waits for
		// it while it holds the lock PutBlock takes).
		data = bytes.Clone(data)
		pw.endRecord(r)
		return false, w.PutBlock(ctx, c, data)
	}
	defer pw.endRecord(r)
	if !c.Defined() {
		return false, nil
	}
	k := keyOf(h)
	has, err := w.s.packs.hasCopy(k)
	if err != nil {
		return false, fmt.Errorf("block store %s: %w", w.s.dir, err)
	}
	if has {
		return false, nil
	}
	// In flight while it is indexed, as PutBlock's blocks are: PutBlock
	// counts its block before the pack writer finds it stored, so one
	// indexed here meanwhile was counted twice.
	w.mu.Lock()
	if _, flying := w.inFlight[c]; flying || w.err != nil {
		w.mu.Unlock()
		return false, w.err
	}
	w.inFlight[c] = struct{}{}
	w.mu.Unlock()
	stored := pw.commitRecord(r, k, h)
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.inFlight, c)
	if stored {
		w.newLocked(data)
	}
	return stored, w.err
}

// newLocked counts a new block.
func (w *Writer) newLocked(data []byte) {
	w.Blocks++
	w.Bytes += int64(len(data))
	if w.OnNew != nil {
		w.OnNew()
	}
}

// Flush makes every block written so far durable.
func (w *Writer) Flush(ctx context.Context) error {
	if w.discard {
		return nil
	}
	w.mu.Lock()
	err := w.err
	w.mu.Unlock()
	if err != nil {
		return err
	}
	return w.s.Sync(ctx)
}

// Get implements ipld.DAGService.
func (w *Writer) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	b, err := w.s.bs.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	return Decode(b)
}

// Decode is the UnixFS node of b: dag-pb or raw, any other codec an error.
func Decode(b blocks.Block) (ipld.Node, error) {
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
