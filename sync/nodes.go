package sync

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/hamt"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/ipfs-sync/ipfs-sync/chunker"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/internal/dagpb"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

// symlinkNode builds a UnixFS symlink as kubo's adder does: the target as
// data and, when mtimes are stored, the mtime (never a mode).
func symlinkNode(p profile.Profile, target string, mtime time.Time) (*mdag.ProtoNode, error) {
	data, err := ft.SymlinkData(target)
	if err != nil {
		return nil, err
	}
	if !mtime.IsZero() {
		fsn, err := ft.FSNodeFromBytes(data)
		if err != nil {
			return nil, err
		}
		fsn.SetModTime(mtime)
		if data, err = fsn.GetBytes(); err != nil {
			return nil, err
		}
	}
	nd := mdag.NodeWithData(data)
	if err := nd.SetCidBuilder(p.CidBuilder()); err != nil {
		return nil, err
	}
	return nd, nil
}

// dirNode builds a directory from its final, complete list of entries and
// writes its blocks to dag. Whether it is a basic directory or a HAMT is
// decided here from the final entries, which gives what kubo's
// DynamicDirectory gives when the same entries are added one by one: during
// an import entries are only added, the size estimate only grows, and the
// switch happens once the estimate is strictly above the threshold.
//
// When the previous version was a HAMT and the new one is too, the old
// shards are loaded and only the changed entries are set or removed: boxo's
// HAMT is canonical (independent of insertion order, empty shards pruned),
// so the result equals a fresh build while only the shards on the changed
// entries' paths are read, rebuilt and written.
func dirNode(ctx context.Context, dag dagPutter, p profile.Profile, mode fs.FileMode, mtime time.Time, links []diff.Link, prev *prevShard) (dirBlock, error) {
	shard, raw, err := needsHAMT(p, mode, mtime, links)
	if err != nil {
		return dirBlock{}, err
	}
	if !shard {
		if raw == nil {
			raw = basicDir(mode, mtime, links)
		}
		c, err := p.CidBuilder().Sum(raw)
		if err == nil {
			err = dag.PutBlock(ctx, c, raw)
		}
		tsize := uint64(len(raw))
		for _, l := range links {
			tsize += l.Tsize
		}
		return dirBlock{cid: c, tsize: tsize, raw: raw}, err
	}
	if prev != nil {
		if nd, err := editShard(ctx, dag, p, mode, mtime, links, prev); err == nil {
			tsize, err := nd.Size()
			return dirBlock{cid: nd.Cid(), tsize: tsize}, err
		}
		// A previous shard that cannot be edited is rebuilt from scratch.
	}
	return buildShard(ctx, dag, p, mode, mtime, links)
}

// dagPutter is where directories go: shards edited through boxo's HAMT
// are nodes, the rest are encoded here and stored as blocks.
type dagPutter interface {
	ipld.DAGService
	chunker.BlockPutter
}

// dirBlock is a directory's root as its parent links it.
type dirBlock struct {
	cid   cid.Cid
	tsize uint64
	raw   []byte // a basic directory's block; nil for a HAMT
}

// prevShard is a directory's previous version when it was a HAMT.
type prevShard struct {
	cid     cid.Cid
	entries []diff.Link
}

func editShard(ctx context.Context, dag ipld.DAGService, p profile.Profile, mode fs.FileMode, mtime time.Time, links []diff.Link, prev *prevShard) (ipld.Node, error) {
	old, err := dag.Get(ctx, prev.cid)
	if err != nil {
		return nil, err
	}
	if fanout, ok := shardFanout(old); !ok || fanout != p.HAMTFanout {
		return nil, fmt.Errorf("previous HAMT has another fanout")
	}
	s, err := hamt.NewHamtFromDag(dag, old)
	if err != nil {
		return nil, err
	}
	s.SetCidBuilder(p.CidBuilder())
	s.SetStat(mode, mtime)
	// The new entries against the old: set what is new or changed,
	// remove what is gone.
	diff.Merge(links, prev.entries, func(n, o *diff.Link) int { return strings.Compare(n.Name, o.Name) }, func(n, o *diff.Link) {
		switch {
		case err != nil:
		case o == nil:
			err = s.SetLink(ctx, n.Name, &ipld.Link{Name: n.Name, Cid: n.Cid, Size: n.Tsize})
		case n == nil:
			err = s.Remove(ctx, o.Name)
		case !n.Cid.Equals(o.Cid) || n.Tsize != o.Tsize:
			err = s.SetLink(ctx, n.Name, &ipld.Link{Name: n.Name, Cid: n.Cid, Size: n.Tsize})
		}
	})
	if err != nil {
		return nil, err
	}
	return s.Node()
}

func shardFanout(nd ipld.Node) (int, bool) {
	pn, ok := nd.(*mdag.ProtoNode)
	if !ok {
		return 0, false
	}
	fsn, err := ft.FSNodeFromBytes(pn.Data())
	if err != nil {
		return 0, false
	}
	return int(fsn.Fanout()), true
}

// basicDir encodes the directory as one dag-pb block, the bytes boxo's
// ProtoNode gives for a UnixFS directory node with these links (in name
// order, as the walk lists them and ProtoNode sorts them), encoded by
// dagpb without a ProtoNode: each of its links was allocations, and an import builds
// every directory of the tree (directories were 3.5 % of a full import's
// CPU).
func basicDir(mode fs.FileMode, mtime time.Time, links []diff.Link) []byte {
	byName := func(a, b diff.Link) int { return strings.Compare(a.Name, b.Name) }
	if !slices.IsSortedFunc(links, byName) {
		links = slices.Clone(links)
		slices.SortStableFunc(links, byName)
	}
	data := ft.FolderPBDataWithStat(mode, mtime)
	n := len(data) + 8
	for _, l := range links {
		n += len(l.Name) + l.Cid.ByteLen() + 24
	}
	raw := make([]byte, 0, n)
	for _, l := range links {
		raw = dagpb.AppendLink(raw, l.Cid, nil, l.Name, l.Tsize)
	}
	return dagpb.AppendData(raw, data)
}

// needsHAMT applies the profile's threshold. In block mode boxo's estimate
// is, by design, the exact serialized size of the basic directory block,
// so that block is encoded and measured, unless a lower bound of its size
// is over the threshold already (a big directory, whose basic block would
// be megabytes encoded for nothing); in links mode the estimate is the
// legacy sum of name and CID lengths (boxo's linksize.LinkSizeFunction).
// The basic block, when it was built, comes back to be stored.
func needsHAMT(p profile.Profile, mode fs.FileMode, mtime time.Time, links []diff.Link) (bool, []byte, error) {
	// kubo checks the threshold when an entry is added, so an empty
	// directory stays basic whatever the threshold.
	if p.HAMTThreshold == 0 || len(links) == 0 {
		return false, nil, nil
	}
	linksEstimate := 0
	for _, l := range links {
		linksEstimate += len(l.Name) + l.Cid.ByteLen()
	}
	switch p.HAMTEstimation {
	case uio.SizeEstimationBlock:
		// Each link is at least its CID and name, their two field tags
		// and lengths, the Tsize tag and value, and its own tag and
		// length: 8 bytes more.
		if linksEstimate+8*len(links) > p.HAMTThreshold {
			return true, nil, nil
		}
		raw := basicDir(mode, mtime, links)
		return len(raw) > p.HAMTThreshold, raw, nil
	case uio.SizeEstimationLinks:
		return linksEstimate > p.HAMTThreshold, nil, nil
	}
	return false, nil, nil
}
