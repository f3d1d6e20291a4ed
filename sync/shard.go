package sync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	gosync "sync"
	"sync/atomic"
	"time"
	"unsafe"

	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/hamt"
	pb "github.com/ipfs/boxo/ipld/unixfs/pb"
	bitfield "github.com/ipfs/go-bitfield"
	"github.com/ipfs/go-cid"
	"github.com/spaolacci/murmur3"

	"github.com/ipfs-sync/ipfs-sync/chunker"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/internal/dagpb"
	"github.com/ipfs-sync/ipfs-sync/internal/usort"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

// Why our own HAMT builder for a new sharded directory, when boxo's
// hamt.Shard makes the same DAG: a Shard is built one SetLink at a time,
// each hashing the name into a fresh buffer, formatting its link name with
// fmt.Sprintf and growing the tree node by node, then serialised by walking
// it. A directory is finished only when its last child is, so a big one is
// built at the very end of a run, on one core: the 20,000-entry directory
// of the small preset took 70 ms there, a twentieth of the import. Here the
// names are hashed once, grouped by the bits each level takes, and every
// shard is encoded once, bottom-up. boxo's HAMT is
// canonical (the same entries give the same shards in any order), and
// shard_test.go checks this builder against hamt.Shard block for block.
// Updating an existing HAMT (editShard) still goes through boxo.

type shardEntry struct {
	hash uint64 // murmur3-64 of the name, read from its top bit down
	link *diff.Link
}

// buildShard writes the HAMT of links (sorted, names unique) with fanout
// p.HAMTFanout as boxo builds it, mode and mtime on the root shard only,
// and returns the root.
func buildShard(ctx context.Context, put chunker.BlockPutter, p profile.Profile, mode fs.FileMode, mtime time.Time, links []diff.Link) (dirBlock, error) {
	fanout := p.HAMTFanout
	lg2, err := hamt.Logtwo(fanout)
	if err != nil {
		return dirBlock{}, err
	}
	if fanout%8 != 0 {
		return dirBlock{}, fmt.Errorf("HAMT fanout %d is not a multiple of 8", fanout)
	}
	b := &shardBuilder{ctx: ctx, put: put, cb: p.CidBuilder(), fanout: fanout, lg2: lg2, pad: len(fmt.Sprintf("%X", fanout-1))}
	ents := make([]shardEntry, len(links))
	for i := range links {
		name := links[i].Name
		ents[i] = shardEntry{hash: murmur3.Sum64(unsafe.Slice(unsafe.StringData(name), len(name))), link: &links[i]}
	}
	// Sorted by hash, the entries of every shard are a contiguous run.
	usort.SortFunc(ents, func(e shardEntry) uint16 { return uint16(e.hash >> 48) }, func(a, b shardEntry) int { return cmp.Compare(a.hash, b.hash) })
	if len(ents) >= parallelShardMin {
		if err := b.buildTop(ents, runtime.GOMAXPROCS(0)); err != nil {
			return dirBlock{}, err
		}
	}
	c, tsize, err := b.shard(ents, 0, mode, mtime)
	return dirBlock{cid: c, tsize: tsize}, err
}

// parallelShardMin is the fewest entries whose HAMT buildShard builds on
// every core: a directory is built when its last child is done, so the
// biggest is often the last thing a run builds while the other cores
// idle (the small preset's 20,000-entry directory: ~7 ms on one core).
const parallelShardMin = 4096

// subShard is a shard below the root, built: its CID and the Tsize the
// root links it with.
type subShard struct {
	cid   cid.Cid
	tsize uint64
}

// buildTop builds the shards one level below the root (ents sorted by
// hash) on up to workers goroutines, into b.top, where the root's shard
// finds them. Each goroutine has its own buffers; PutBlock takes blocks
// from any goroutine, as the file readers' leaves.
func (b *shardBuilder) buildTop(ents []shardEntry, workers int) error {
	var runs [][]shardEntry // the root's slots that hold a shard
	for len(ents) > 0 {
		s, n := b.slot(ents[0], 0), 1
		for n < len(ents) && b.slot(ents[n], 0) == s {
			n++
		}
		if n > 1 {
			runs = append(runs, ents[:n])
		}
		ents = ents[n:]
	}
	b.top = make([]subShard, b.fanout)
	var next atomic.Int64
	errs := make([]error, workers)
	var wg gosync.WaitGroup
	for w := range workers {
		sub := &shardBuilder{ctx: b.ctx, put: b.put, cb: b.cb, fanout: b.fanout, lg2: b.lg2, pad: b.pad}
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(runs) && errs[w] == nil; i = int(next.Add(1)) - 1 {
				c, tsize, err := sub.shard(runs[i], 1, 0, time.Time{})
				b.top[b.slot(runs[i][0], 0)], errs[w] = subShard{c, tsize}, err
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

type shardBuilder struct {
	ctx    context.Context
	put    chunker.BlockPutter
	cb     cid.Builder
	fanout int
	lg2    int
	pad    int // hex digits of a slot in link names
	// A block and a bitfield for each depth, reused: a shard's block is
	// stored before its parent goes on.
	raws [][]byte
	bfs  []bitfield.Bitfield
	// top, by slot, are the root's shards buildTop built beforehand; nil
	// when the root's shard builds its own.
	top []subShard
}

// slot is the index entry e takes in a shard at the given depth.
func (b *shardBuilder) slot(e shardEntry, depth int) int {
	return int(e.hash << (depth * b.lg2) >> (64 - b.lg2))
}

// shard encodes and stores the shard at depth holding ents (sorted by
// hash): a slot with one entry links it, a slot with more links a shard
// one level down. It returns the shard's CID and the Tsize its parent
// links it with. The block is encoded by dagpb, as boxo's ProtoNode
// encodes it, into a buffer reused for each depth: through ProtoNode each
// of a link's fields was an allocation.
func (b *shardBuilder) shard(ents []shardEntry, depth int, mode fs.FileMode, mtime time.Time) (cid.Cid, uint64, error) {
	if (depth+1)*b.lg2 > 64 {
		// boxo's hash runs out of bits the same way.
		return cid.Undef, 0, fmt.Errorf("HAMT: entries %q and %q have the same murmur3 hash", ents[0].link.Name, ents[1].link.Name)
	}
	for len(b.raws) <= depth { // buildTop's builders start one level down
		bf, err := bitfield.NewBitfield(b.fanout)
		if err != nil {
			return cid.Undef, 0, err
		}
		b.raws, b.bfs = append(b.raws, nil), append(b.bfs, bf)
	}
	bf := b.bfs[depth]
	clear(bf)
	raw := b.raws[depth][:0]
	var prefix [16]byte
	tsize := uint64(0) // the links' Tsizes
	for len(ents) > 0 {
		s := b.slot(ents[0], depth)
		n := 1
		for n < len(ents) && b.slot(ents[n], depth) == s {
			n++
		}
		bf.SetBit(s)
		name := b.slotName(prefix[:0], s)
		if n == 1 {
			l := ents[0].link
			raw = dagpb.AppendLink(raw, l.Cid, name, l.Name, l.Tsize)
			tsize += l.Tsize
		} else {
			c, size, err := b.subShard(ents[:n], depth, s)
			if err != nil {
				return cid.Undef, 0, err
			}
			raw = dagpb.AppendLink(raw, c, name, "", size)
			tsize += size
		}
		ents = ents[n:]
	}
	raw, err := b.appendData(raw, bf.Bytes(), mode, mtime)
	if err != nil {
		return cid.Undef, 0, err
	}
	b.raws[depth] = raw
	c, err := b.cb.Sum(raw)
	if err != nil {
		return cid.Undef, 0, err
	}
	if err := b.put.PutBlock(b.ctx, c, raw); err != nil {
		return cid.Undef, 0, err
	}
	return c, uint64(len(raw)) + tsize, nil
}

// subShard is the shard one level below depth for slot s, holding ents:
// built by buildTop beforehand, or now.
func (b *shardBuilder) subShard(ents []shardEntry, depth, s int) (cid.Cid, uint64, error) {
	if depth == 0 && b.top != nil {
		return b.top[s].cid, b.top[s].tsize, nil
	}
	return b.shard(ents, depth+1, 0, time.Time{})
}

// appendData appends the PBNode's Data field: a UnixFS HAMTShard node
// with the slots' bitfield. The root's, which may carry mode and mtime,
// is boxo's encoding: a directory's mode follows boxo's pbDataAddStat,
// not the FSNode.SetMode rules dagpb.UnixFS.SetMode follows.
func (b *shardBuilder) appendData(raw, bits []byte, mode fs.FileMode, mtime time.Time) ([]byte, error) {
	if mode != 0 || !mtime.IsZero() {
		data, err := ft.HAMTShardDataWithStat(bits, uint64(b.fanout), hamt.HashMurmur3, mode, mtime)
		if err != nil {
			return nil, err
		}
		return dagpb.AppendData(raw, data), nil
	}
	return dagpb.AppendUnixFS(raw, &dagpb.UnixFS{
		Type: pb.Data_HAMTShard, Data: bits, HashType: hamt.HashMurmur3, Fanout: uint64(b.fanout),
		Has: dagpb.HasHashType | dagpb.HasFanout,
	}), nil
}

// slotName appends slot s as boxo names it: upper-case hex, zero-padded
// to the width of the largest slot.
func (b *shardBuilder) slotName(dst []byte, s int) []byte {
	const digits = "0123456789ABCDEF"
	var buf [16]byte
	i := len(buf)
	for v := uint(s); v > 0 || i == len(buf); v >>= 4 {
		i--
		buf[i] = digits[v&15]
	}
	for range b.pad - (len(buf) - i) {
		dst = append(dst, '0')
	}
	return append(dst, buf[i:]...)
}
