package carimport

import (
	"context"
	"fmt"

	bstore "github.com/ipfs/boxo/blockstore"
	mdag "github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/export"
)

// Missing lists the blocks under root that bs lacks, each once.
//
// old is a root known to be complete (the ref's current one), or
// cid.Undef. The two DAGs are walked side by side, entries aligned by link
// name and chunks by index, as export.WalkSince does: a CID equal to
// old's at the same place, or linked from an old node read on the way, is
// complete and not read, so checking a delta costs about what the delta
// changed. A ref holds UnixFS DAGs only (dag-pb and raw blocks: the links
// gc keeps and pull follows), so any other codec under root is an error.
func Missing(ctx context.Context, bs bstore.Blockstore, old, root cid.Cid) ([]cid.Cid, error) {
	m := &missing{ctx: ctx, bs: bs, seen: cid.NewSet(), known: cid.NewSet()}
	if err := m.walk(old, root); err != nil {
		return nil, err
	}
	return m.out, nil
}

type missing struct {
	ctx   context.Context
	bs    bstore.Blockstore
	seen  *cid.Set // visited under root
	known *cid.Set // complete: linked from old's nodes
	out   []cid.Cid
}

func (m *missing) walk(o, n cid.Cid) error {
	if o.Defined() && o.Equals(n) || n.Prefix().MhType == mh.IDENTITY || m.known.Has(n) || !m.seen.Visit(n) {
		return nil
	}
	if err := m.ctx.Err(); err != nil {
		return err
	}
	switch n.Prefix().Codec {
	case cid.Raw:
		has, err := m.bs.Has(m.ctx, n)
		if err != nil {
			return fmt.Errorf("block %s: %w", n, err)
		}
		if !has {
			m.out = append(m.out, n)
		}
		return nil
	case cid.DagProtobuf:
	default:
		return fmt.Errorf("block %s has codec %#x: a ref holds UnixFS DAGs (dag-pb and raw blocks) only; import this CAR without --name", n, n.Prefix().Codec)
	}
	links, ok, err := m.links(n)
	if err != nil {
		return err
	}
	if !ok {
		m.out = append(m.out, n)
		return nil
	}
	var olinks []*ipld.Link
	if o.Defined() && o.Prefix().Codec == cid.DagProtobuf {
		// old is complete: a read that fails only loses the shortcut.
		olinks, _, _ = m.links(o)
		for _, l := range olinks {
			m.known.Add(l.Cid)
		}
	}
	for i, oc := range export.Counterparts(olinks, links) {
		if err := m.walk(oc, links[i].Cid); err != nil {
			return err
		}
	}
	return nil
}

// links reads the dag-pb block c's links; ok is false when bs lacks it.
func (m *missing) links(c cid.Cid) (links []*ipld.Link, ok bool, err error) {
	b, err := m.bs.Get(m.ctx, c)
	if ipld.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("block %s: %w", c, err)
	}
	nd, err := mdag.DecodeProtobuf(b.RawData())
	if err != nil {
		return nil, true, fmt.Errorf("block %s: %w", c, err)
	}
	return nd.Links(), true, nil
}
