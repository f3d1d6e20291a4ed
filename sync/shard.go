package sync

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/hamt"
	bitfield "github.com/ipfs/go-bitfield"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/spaolacci/murmur3"

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
// shard is encoded once, bottom-up, with boxo's node types. boxo's HAMT is
// canonical (the same entries give the same shards in any order), and
// shard_test.go checks this builder against hamt.Shard block for block.
// Updating an existing HAMT (editShard) still goes through boxo.

type shardEntry struct {
	hash uint64 // murmur3-64 of the name, read from its top bit down
	link *Link
}

// buildShard writes the HAMT of links (sorted, names unique) with fanout
// p.HAMTFanout as boxo builds it, mode and mtime on the root shard only,
// and returns the root.
func buildShard(ctx context.Context, dag ipld.DAGService, p profile.Profile, mode fs.FileMode, mtime time.Time, links []Link) (ipld.Node, error) {
	fanout := p.HAMTFanout
	lg2, err := hamt.Logtwo(fanout)
	if err != nil {
		return nil, err
	}
	if fanout%8 != 0 {
		return nil, fmt.Errorf("HAMT fanout %d is not a multiple of 8", fanout)
	}
	b := &shardBuilder{ctx: ctx, dag: dag, p: p, fanout: fanout, lg2: lg2, pad: len(fmt.Sprintf("%X", fanout-1))}
	ents := make([]shardEntry, len(links))
	for i := range links {
		ents[i] = shardEntry{hash: murmur3.Sum64([]byte(links[i].Name)), link: &links[i]}
	}
	// Sorted by hash, the entries of every shard are a contiguous run.
	slices.SortFunc(ents, func(a, b shardEntry) int {
		if a.hash == b.hash {
			return 0
		}
		if a.hash < b.hash {
			return -1
		}
		return 1
	})
	return b.shard(ents, 0, mode, mtime)
}

type shardBuilder struct {
	ctx    context.Context
	dag    ipld.DAGService
	p      profile.Profile
	fanout int
	lg2    int
	pad    int // hex digits of a slot in link names
}

// slot is the index entry e takes in a shard at the given depth.
func (b *shardBuilder) slot(e shardEntry, depth int) int {
	return int(e.hash << (depth * b.lg2) >> (64 - b.lg2))
}

// shard encodes and stores the shard at depth holding ents (sorted by
// hash): a slot with one entry links it, a slot with more links a shard
// one level down.
func (b *shardBuilder) shard(ents []shardEntry, depth int, mode fs.FileMode, mtime time.Time) (*mdag.ProtoNode, error) {
	if (depth+1)*b.lg2 > 64 {
		// boxo's hash runs out of bits the same way.
		return nil, fmt.Errorf("HAMT: entries %q and %q have the same murmur3 hash", ents[0].link.Name, ents[1].link.Name)
	}
	nd := new(mdag.ProtoNode)
	if err := nd.SetCidBuilder(b.p.CidBuilder()); err != nil {
		return nil, err
	}
	bf, err := bitfield.NewBitfield(b.fanout)
	if err != nil {
		return nil, err
	}
	prefix := make([]byte, 0, 64)
	for len(ents) > 0 {
		s := b.slot(ents[0], depth)
		n := 1
		for n < len(ents) && b.slot(ents[n], depth) == s {
			n++
		}
		bf.SetBit(s)
		prefix = b.slotName(prefix[:0], s)
		if n == 1 {
			l := ents[0].link
			if err := nd.AddRawLink(string(prefix)+l.Name, &ipld.Link{Cid: l.Cid, Size: l.Tsize}); err != nil {
				return nil, err
			}
		} else {
			child, err := b.shard(ents[:n], depth+1, 0, time.Time{})
			if err != nil {
				return nil, err
			}
			size, err := child.Size()
			if err != nil {
				return nil, err
			}
			if err := nd.AddRawLink(string(prefix), &ipld.Link{Cid: child.Cid(), Size: size}); err != nil {
				return nil, err
			}
		}
		ents = ents[n:]
	}
	data, err := ft.HAMTShardDataWithStat(bf.Bytes(), uint64(b.fanout), hamt.HashMurmur3, mode, mtime)
	if err != nil {
		return nil, err
	}
	nd.SetData(data)
	return nd, b.dag.Add(b.ctx, nd)
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
