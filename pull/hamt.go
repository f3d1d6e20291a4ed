package pull

import (
	"context"
	"errors"
	"fmt"
	"sync"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/hamt"
	"github.com/ipfs/go-cid"
)

// A HAMT-sharded directory is read with a walk of its own rather than
// boxo's hamt.Shard.EnumLinks: an update re-lists a big directory every
// time one of its entries changes, and boxo's walk builds a Shard (with a
// formatted prefix and a bitfield) per entry and per shard and feeds them
// through channels; on a 20,000-entry directory (2,800 shards) that was
// 90 ms of the 400 ms a publish cycle's pull took. This one reads the same
// format with the same checks (boxo's hamt constants and Logtwo) and
// fetches the shards of a level all at once.

// maxHAMTLevels bounds a HAMT's depth: each level consumes log2(fanout)
// bits of a 64-bit hash, so no honest HAMT is deeper than 64 levels.
const maxHAMTLevels = 64

// shardPad checks a HAMT shard's header as boxo's hamt.NewHamtFromDag does
// (UnixFS HAMTShard, murmur3, a power-of-two fanout up to 1024, a bitfield
// no wider than the fanout) and returns the length of its links' slot
// prefix: a link named by the prefix alone is a sub-shard, a longer one an
// entry.
func shardPad(nd *mdag.ProtoNode) (int, error) {
	fsn, err := ft.FSNodeFromBytes(nd.Data())
	if err != nil {
		return 0, err
	}
	if fsn.Type() != ft.THAMTShard {
		return 0, errors.New("node was not a dir shard")
	}
	if fsn.HashType() != hamt.HashMurmur3 {
		return 0, errors.New("only murmur3 supported as hash function")
	}
	fanout := fsn.Fanout()
	if fanout > 1024 {
		return 0, fmt.Errorf("hamt width (%d) exceeds maximum allowed (1024)", fanout)
	}
	if _, err := hamt.Logtwo(int(fanout)); err != nil || fanout < 8 {
		return 0, fmt.Errorf("hamt fanout %d is not a power of two of at least 8", fanout)
	}
	if uint64(len(fsn.Data())) > fanout/8 {
		return 0, fmt.Errorf("hamt bitfield of %d bytes exceeds fanout of %d", len(fsn.Data()), fanout)
	}
	return len(fmt.Sprintf("%X", fanout-1)), nil
}

// shardLinks is what one shard holds: entries, and sub-shards.
type shardLinks struct {
	values []link
	subs   []cid.Cid
}

// parseShard splits the shard c's links into entries and sub-shards.
func parseShard(c cid.Cid, nd *mdag.ProtoNode) (shardLinks, error) {
	pad, err := shardPad(nd)
	if err != nil {
		return shardLinks{}, fmt.Errorf("shard %s: %w", c, err)
	}
	var sl shardLinks
	for _, l := range nd.Links() {
		switch {
		case len(l.Name) > pad:
			sl.values = append(sl.values, link{Name: l.Name[pad:], Cid: l.Cid, Tsize: l.Size})
		case len(l.Name) == pad:
			sl.subs = append(sl.subs, l.Cid)
		default:
			return shardLinks{}, fmt.Errorf("shard %s: invalid link name %q", c, l.Name)
		}
	}
	return sl, nil
}

// hamtLinks walks the HAMT shard nd (whose CID is c) at rel and hands
// its entries to each, a level at a time: the root shard's, then those of
// every shard one level down, and so on. Sub-shards come from the cache
// (those unchanged since the last run) or the source, fetched and parsed in
// parallel; each is cached for the next run and counts as an entry against
// --max-entries.
func (p *puller) hamtLinks(ctx context.Context, c cid.Cid, nd *mdag.ProtoNode, rel string, each func([]link) error) error {
	root, err := parseShard(c, nd)
	if err != nil {
		return err
	}
	// Each level's entries are handed over while the next level is being
	// fetched: each (checking and queueing thousands of entries) and the
	// round trips overlap. One call of each at a time, in level order.
	var last chan error
	wait := func() error {
		if last == nil {
			return nil
		}
		err := <-last
		last = nil
		return err
	}
	defer wait()
	emit := func(values []link) error {
		if err := wait(); err != nil {
			return err
		}
		last = make(chan error, 1)
		go func() { last <- each(values) }()
		return nil
	}
	if err := emit(root.values); err != nil {
		return err
	}
	seen := cid.NewSet()
	var next []cid.Cid
	add := func(subs []cid.Cid) {
		for _, s := range subs {
			if seen.Visit(s) {
				next = append(next, s)
			}
		}
	}
	add(root.subs)
	for depth := 1; len(next) > 0; depth++ {
		if depth >= maxHAMTLevels {
			return fmt.Errorf("HAMT deeper than %d levels", maxHAMTLevels)
		}
		level, err := p.shards(ctx, next, rel)
		if err != nil {
			return err
		}
		next = nil
		var values []link
		for _, sl := range level {
			values = append(values, sl.values...)
			add(sl.subs)
		}
		if err := emit(values); err != nil {
			return err
		}
	}
	return wait()
}

// shards gets and parses the HAMT shards cs, 32 at a time.
func (p *puller) shards(ctx context.Context, cs []cid.Cid, rel string) ([]shardLinks, error) {
	if err := p.addEntries(int64(len(cs)), rel); err != nil {
		return nil, err
	}
	out := make([]shardLinks, len(cs))
	var wg sync.WaitGroup
	var first onceErr
	sem := make(chan struct{}, 32)
	for i, c := range cs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			nd, err := p.shard(ctx, c)
			if err == nil {
				out[i], err = parseShard(c, nd)
			}
			if err != nil {
				first.set(err)
			}
		})
	}
	wg.Wait()
	return out, first.get()
}

// shard gets one HAMT shard node and caches it.
func (p *puller) shard(ctx context.Context, c cid.Cid) (*mdag.ProtoNode, error) {
	if c.Prefix().Codec != cid.DagProtobuf {
		return nil, fmt.Errorf("HAMT shard %s is not dag-pb", c)
	}
	b, err := p.block(ctx, c)
	if err != nil {
		return nil, err
	}
	nd, err := mdag.DecodeProtobuf(b.RawData())
	if err != nil {
		return nil, fmt.Errorf("HAMT shard %s: %w", c, err)
	}
	if err := p.st.cacheBlock(c, b.RawData()); err != nil {
		return nil, err
	}
	return nd, nil
}
