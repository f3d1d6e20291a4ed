package sync

import (
	"context"
	"errors"
	"fmt"
	gosync "sync"

	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/export"
	"github.com/ipfs-sync/ipfs-sync/remote"
)

// errOnTarget means what the previous root stores of a file is on the
// target only: knowing it would cost a fetch of the file's root block,
// which for a small file is the file itself.
var errOnTarget = errors.New("previous version on the target")

// remotePrevious makes the run diff against c, a root the target holds
// and the store does not. Its directories are read from the target and
// kept in the store (an unchanged directory is linked again, so its
// blocks must be here), and every file is read and compared by CID (see
// fileAt): what a file's previous version stores is known only from its
// root block, and a runner that keeps nothing has mtimes from a fresh
// checkout, which vouch for nothing. Leaves are never fetched. A root the
// target cannot give is a full import.
func (r *run) remotePrevious(ctx context.Context, c cid.Cid) cid.Cid {
	bs := remote.New(r.store.Blockstore(), r.opts.Target.Source, func(ctx context.Context, c cid.Cid, data []byte) error {
		return r.w.PutBlock(ctx, c, data)
	})
	if _, err := bs.Get(ctx, c); err != nil {
		r.warn("", fmt.Errorf("previous root %s: %w; importing in full", c, err))
		return c
	}
	r.fromTarget = bs
	r.tree = diff.Tree{DAG: targetDAG{Writer: r.w, bs: bs}}
	r.reuse = !r.opts.Full
	return c
}

// targetDAG is the run's writer, reading through the target what the
// store lacks.
type targetDAG struct {
	*blockstore.Writer
	bs *remote.Blockstore
}

// fetchers bounds the blocks one GetMany fetches at once (a HAMT's shards).
const fetchers = 16

func (d targetDAG) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	b, err := d.bs.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	return blockstore.Decode(b)
}

// GetMany fetches cs side by side; the answers come in any order, as
// boxo's HAMT walk, the caller, expects of a DAGService.
func (d targetDAG) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	sem := make(chan struct{}, fetchers)
	var wg gosync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			sem <- struct{}{}
			nd, err := d.Get(ctx, c)
			<-sem
			out <- &ipld.NodeOption{Node: nd, Err: err}
		})
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	return out
}

// fetchSubtree copies the DAG under c from the target into the store, so
// that the directory at relPath, which cannot be read here, keeps its
// previous version without a hole in the repository's DAG.
func (r *run) fetchSubtree(ctx context.Context, relPath string, c cid.Cid) bool {
	err := export.Walk(ctx, r.fromTarget, c, func(cid.Cid, []byte) error { return nil })
	if err != nil {
		r.warn("", fmt.Errorf("%s: previous version: %w", relPath, err))
	}
	return err == nil
}
