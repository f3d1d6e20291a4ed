package export

import (
	"context"
	"fmt"
	"io"

	bstore "github.com/ipfs/boxo/blockstore"
	mdag "github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// CARSince writes, as a CARv1 rooted at root, the blocks under root that
// are not under old: what a node that holds old needs to hold root.
func CARSince(ctx context.Context, bs bstore.Blockstore, old, root cid.Cid, w io.Writer) (Stats, error) {
	return stream(ctx, w, root, func(visit func(cid.Cid, []byte) error) error {
		return WalkSince(ctx, bs, old, root, visit)
	})
}

// WalkSince visits each block under root that is not under old, once.
//
// The two DAGs are walked side by side and aligned by position: directory
// entries (and HAMT shard slots) by link name, file chunks by index. An
// identical CID at the same place is a shared subtree and is skipped
// without being read, so the cost follows the size of the change, not of
// the tree. Blocks of old are known from the old nodes read on the way; a
// block that moved elsewhere (a renamed file) may be visited again, which
// costs bytes but never correctness: the result always completes root.
func WalkSince(ctx context.Context, bs bstore.Blockstore, old, root cid.Cid, visit func(cid.Cid, []byte) error) error {
	oldSeen, sent := cid.NewSet(), cid.NewSet()
	oldSeen.Add(old)
	var pair func(o, n cid.Cid) error
	pair = func(o, n cid.Cid) error {
		if o.Defined() && o.Equals(n) {
			return nil
		}
		if n.Prefix().MhType == mh.IDENTITY || oldSeen.Has(n) || !sent.Visit(n) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		nb, err := bs.Get(ctx, n)
		if err != nil {
			return fmt.Errorf("block %s: %w", n, err)
		}
		if err := visit(n, nb.RawData()); err != nil {
			return err
		}
		nlinks, err := linksOf(nb)
		if err != nil || len(nlinks) == 0 {
			return err
		}
		var olinks []*ipld.Link
		if o.Defined() && o.Prefix().Codec == cid.DagProtobuf {
			if ob, err := bs.Get(ctx, o); err == nil {
				olinks, _ = linksOf(ob)
				for _, l := range olinks {
					oldSeen.Add(l.Cid)
				}
			}
		}
		for i, oc := range Counterparts(olinks, nlinks) {
			if err := pair(oc, nlinks[i].Cid); err != nil {
				return err
			}
		}
		return nil
	}
	return pair(old, root)
}

// Counterparts pairs each of links, a node's in the new DAG, with its
// counterpart among olinks, the links of the node it replaces: a named
// link (a directory entry) with the old link of that name, an unnamed one
// (a file's chunk) with the old unnamed link at its index; cid.Undef where
// there is none.
func Counterparts(olinks, links []*ipld.Link) []cid.Cid {
	byName := map[string]cid.Cid{}
	for _, l := range olinks {
		if l.Name != "" {
			byName[l.Name] = l.Cid
		}
	}
	out := make([]cid.Cid, len(links))
	for i, l := range links {
		switch {
		case l.Name != "":
			out[i] = byName[l.Name]
		case i < len(olinks) && olinks[i].Name == "":
			out[i] = olinks[i].Cid
		}
	}
	return out
}

func linksOf(b blocks.Block) ([]*ipld.Link, error) {
	switch b.Cid().Prefix().Codec {
	case cid.Raw:
		return nil, nil
	case cid.DagProtobuf:
		nd, err := mdag.DecodeProtobuf(b.RawData())
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", b.Cid(), err)
		}
		return nd.Links(), nil
	}
	return nil, fmt.Errorf("block %s: codec %#x is not UnixFS", b.Cid(), b.Cid().Prefix().Codec)
}
