// Package export owns writing DAGs out of the store as CAR files: the whole
// DAG under a root, in the order a depth-first walk visits it.
package export

import (
	"context"
	"fmt"
	"io"

	bstore "github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
	mh "github.com/multiformats/go-multihash"
)

// Stats counts what a CAR received.
type Stats struct {
	Blocks int64
	Bytes  int64
}

// CAR writes every block under root, each once, as a CARv1 with root as
// its only root. A missing block is an error naming its CID.
func CAR(ctx context.Context, bs bstore.Blockstore, root cid.Cid, w io.Writer) (Stats, error) {
	return stream(ctx, w, root, func(visit func(cid.Cid, []byte) error) error {
		return Walk(ctx, bs, root, visit)
	})
}

// stream writes a CARv1 rooted at root holding the blocks walk visits. w
// is wrapped so go-car sees a plain writer: an *os.File has WriteAt, and
// go-car would seek a pipe (stdout).
func stream(ctx context.Context, w io.Writer, root cid.Cid, walk func(visit func(cid.Cid, []byte) error) error) (Stats, error) {
	car, err := storage.NewWritable(struct{ io.Writer }{w}, []cid.Cid{root}, carv2.WriteAsCarV1(true), carv2.AllowDuplicatePuts(true))
	if err != nil {
		return Stats{}, err
	}
	var st Stats
	err = walk(func(c cid.Cid, data []byte) error {
		st.Blocks++
		st.Bytes += int64(len(data))
		return car.Put(ctx, c.KeyString(), data)
	})
	if err != nil {
		return st, err
	}
	return st, car.Finalize()
}

// Walk visits every block under root once, parents before children, links
// in order. Identity CIDs carry their data inline and are not visited.
func Walk(ctx context.Context, bs bstore.Blockstore, root cid.Cid, visit func(cid.Cid, []byte) error) error {
	seen := cid.NewSet()
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if c.Prefix().MhType == mh.IDENTITY || !seen.Visit(c) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := bs.Get(ctx, c)
		if err != nil {
			return fmt.Errorf("block %s: %w", c, err)
		}
		if err := visit(c, b.RawData()); err != nil {
			return err
		}
		links, err := linksOf(b)
		if err != nil {
			return err
		}
		for i := len(links) - 1; i >= 0; i-- {
			stack = append(stack, links[i].Cid)
		}
	}
	return nil
}
