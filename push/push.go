package push

import (
	"context"
	"fmt"
	"io"

	bstore "github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/export"
	"github.com/ipfs-sync/ipfs-sync/remote"
)

// Options say what to do with a root on a kubo node.
type Options struct {
	Name    string // the record of what was pushed is kept per API and name
	ToFiles string // MFS path to point at the root
	Publish string // IPNS key to publish the root under
	// Base is the previous root when no push to the node is recorded
	// here (a repository that keeps nothing between runs: the root a
	// sync read from the target, found there or given as --base). If
	// the node holds it whole (Kubo.Holds), the blocks sent are those
	// not under Base, whose blocks this repository lacks are read
	// through Remote, and Base's pin moves to the root as a recorded
	// root's would; else the whole DAG is sent.
	Base   cid.Cid
	Remote remote.Source
}

// Result is what one push did.
type Result struct {
	API      string  `json:"api"`
	Root     string  `json:"root"`
	Previous *string `json:"previous"`
	Blocks   int64   `json:"blocks_sent"`
	Bytes    int64   `json:"bytes_sent"`
	IPNS     string  `json:"ipns,omitempty"`
}

// Push sends kubo the blocks of root it lacks (those not under the root
// last pushed to it under the same name, or else under opts.Base), then
// pins root in place of that root. The record moves only after the pin, so
// a push interrupted at any point is simply run again.
func Push(ctx context.Context, store *blockstore.Store, k *Kubo, root cid.Cid, opts Options) (Result, error) {
	res := Result{API: k.URL(), Root: root.String()}
	prev, bs, held, err := previous(ctx, store, k, opts)
	if err != nil {
		return res, err
	}
	if prev.Defined() {
		s := prev.String()
		res.Previous = &s
	}
	// root pinned already: kubo would walk its whole DAG to pin it again.
	pinned := held && prev.Equals(root)
	var st export.Stats
	err = k.Import(ctx, func(w io.Writer) error {
		var err error
		if prev.Defined() {
			st, err = export.CARSince(ctx, bs, prev, root, w)
		} else {
			st, err = export.CAR(ctx, bs, root, w)
		}
		return err
	})
	res.Blocks, res.Bytes = st.Blocks, st.Bytes
	if err != nil {
		return res, fmt.Errorf("push %s: %w", root, err)
	}
	if !pinned {
		if err := k.Pin(ctx, prev, root); err != nil {
			return res, fmt.Errorf("pin %s: %w", root, err)
		}
	}
	if opts.ToFiles != "" && !filesAt(ctx, k, opts.ToFiles, root) {
		if err := k.ToFiles(ctx, root, opts.ToFiles); err != nil {
			return res, fmt.Errorf("--to-files %s: %w", opts.ToFiles, err)
		}
	}
	if opts.Publish != "" {
		if res.IPNS, err = k.Publish(ctx, root, opts.Publish); err != nil {
			return res, fmt.Errorf("--publish %s: %w", opts.Publish, err)
		}
	}
	return res, store.RecordPush(k.URL(), opts.Name, root)
}

// previous is the root kubo holds that the push is a delta against, and
// where its blocks are read: the root recorded as last pushed under the
// name, if the repository still holds it; else opts.Base if kubo holds it
// whole (held: pinned recursively, as asked), read through opts.Remote
// where the repository lacks it; else none.
func previous(ctx context.Context, store *blockstore.Store, k *Kubo, opts Options) (prev cid.Cid, bs bstore.Blockstore, held bool, err error) {
	bs = store.Blockstore()
	if prev, err = store.Pushed(k.URL(), opts.Name); err != nil {
		return cid.Undef, bs, false, err
	}
	if prev.Defined() {
		if has, _ := bs.Has(ctx, prev); has {
			return prev, bs, false, nil
		}
		// Cannot diff against a root the repository no longer holds.
	}
	if !opts.Base.Defined() {
		return cid.Undef, bs, false, nil
	}
	if held, err = k.Holds(ctx, opts.Base); err != nil || !held {
		if err != nil {
			err = fmt.Errorf("pin of %s: %w", opts.Base, err)
		}
		return cid.Undef, bs, false, err
	}
	if opts.Remote != nil {
		bs = remote.New(bs, opts.Remote, nil)
	}
	return opts.Base, bs, true, nil
}

// filesAt reports whether the MFS path holds root already: replacing it
// (files/rm, then files/cp) would leave the path empty for a moment, for
// nothing.
func filesAt(ctx context.Context, k *Kubo, mfsPath string, root cid.Cid) bool {
	cur, err := remote.NewKubo(k.URL()).FilesRoot(ctx, mfsPath)
	return err == nil && cur.Equals(root)
}
