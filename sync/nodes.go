package sync

import (
	"context"
	"fmt"
	"io/fs"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/hamt"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/ipfs-sync/ipfs-sync/profile"
)

// Link is a named child of a directory.
type Link struct {
	Name  string
	Cid   cid.Cid
	Tsize uint64
}

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
func dirNode(ctx context.Context, dag ipld.DAGService, p profile.Profile, mode fs.FileMode, mtime time.Time, links []Link) (ipld.Node, bool, error) {
	basic := mdag.NodeWithData(ft.FolderPBDataWithStat(mode, mtime))
	if err := basic.SetCidBuilder(p.CidBuilder()); err != nil {
		return nil, false, err
	}
	linksEstimate := 0
	for _, l := range links {
		if err := basic.AddRawLink(l.Name, &ipld.Link{Cid: l.Cid, Size: l.Tsize}); err != nil {
			return nil, false, err
		}
		linksEstimate += len(l.Name) + l.Cid.ByteLen()
	}
	if shard, err := needsHAMT(p, basic, linksEstimate); err != nil || !shard {
		if err == nil {
			err = dag.Add(ctx, basic)
		}
		return basic, false, err
	}
	s, err := hamt.NewShard(dag, p.HAMTFanout)
	if err != nil {
		return nil, false, err
	}
	s.SetCidBuilder(p.CidBuilder())
	s.SetStat(mode, mtime)
	for _, l := range links {
		if err := s.SetLink(ctx, l.Name, &ipld.Link{Name: l.Name, Cid: l.Cid, Size: l.Tsize}); err != nil {
			return nil, false, fmt.Errorf("HAMT entry %q: %w", l.Name, err)
		}
	}
	// Node writes every shard, the root included, to dag.
	nd, err := s.Node()
	return nd, true, err
}

// needsHAMT applies the profile's threshold. In block mode boxo's estimate
// is, by design, the exact serialized size of the basic directory block, so
// the encoded block is measured directly; in links mode the estimate is the
// legacy sum of name and CID lengths (boxo's linksize.LinkSizeFunction).
func needsHAMT(p profile.Profile, basic *mdag.ProtoNode, linksEstimate int) (bool, error) {
	// kubo checks the threshold when an entry is added, so an empty
	// directory stays basic whatever the threshold.
	if p.HAMTThreshold == 0 || len(basic.Links()) == 0 {
		return false, nil
	}
	switch p.HAMTEstimation {
	case uio.SizeEstimationBlock:
		raw, err := basic.EncodeProtobuf(false)
		if err != nil {
			return false, err
		}
		return len(raw) > p.HAMTThreshold, nil
	case uio.SizeEstimationLinks:
		return linksEstimate > p.HAMTThreshold, nil
	}
	return false, nil
}
