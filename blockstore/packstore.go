package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// packStore is a repository's blocks as a boxo Blockstore. Without a
// writer it only reads (serve, export and pull, which take no lock).
type packStore struct {
	set *packSet
	w   *packWriter
}

var errReadOnly = errors.New("the repository is open for reading only")

func (p *packStore) lookup(k key) (loc, bool, error) {
	if p.w != nil {
		if l, ok := p.w.pendingLoc(k); ok {
			return l, true, nil
		}
	}
	l, ok, err := p.set.find(k)
	if ok || err != nil || p.w != nil {
		return l, ok, err
	}
	// A reader: a sync or gc may have changed the store since it loaded.
	if changed, err := p.set.load(); err != nil || !changed {
		return loc{}, false, err
	}
	return p.set.find(k)
}

func (p *packStore) Has(_ context.Context, c cid.Cid) (bool, error) {
	_, ok, err := p.lookup(keyOf(c.Hash()))
	return ok, err
}

func (p *packStore) GetSize(_ context.Context, c cid.Cid) (int, error) {
	l, ok, err := p.lookup(keyOf(c.Hash()))
	if err != nil {
		return -1, err
	}
	if !ok {
		return -1, ipld.ErrNotFound{Cid: c}
	}
	return int(l.size), nil
}

// Get returns the block c, checked (packSet.read): the store handed out
// as a Blockstore is this one, with nothing hashing a block again.
func (p *packStore) Get(_ context.Context, c cid.Cid) (blocks.Block, error) {
	data, err := p.read(c, nil, false)
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// read returns the data of block c, read into buf when it has room and
// checked (packSet.read).
func (p *packStore) read(c cid.Cid, buf []byte, thorough bool) ([]byte, error) {
	k := keyOf(c.Hash())
	for retry := true; ; retry = false {
		l, ok, err := p.lookup(k)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ipld.ErrNotFound{Cid: c}
		}
		if p.w != nil {
			if err := p.w.readable(l); err != nil {
				return nil, err
			}
		}
		data, err := p.set.read(l, c.Hash(), buf, thorough)
		if errors.Is(err, fs.ErrNotExist) && retry && p.w == nil {
			// A gc moved the block and removed its pack since we loaded.
			if _, err := p.set.load(); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", c, err)
		}
		return data, nil
	}
}

func (p *packStore) Put(ctx context.Context, b blocks.Block) error {
	return p.PutMany(ctx, []blocks.Block{b})
}

func (p *packStore) PutMany(ctx context.Context, bs []blocks.Block) error {
	if p.w == nil {
		return errReadOnly
	}
	for _, b := range bs {
		k := keyOf(b.Cid().Hash())
		if _, has, err := p.lookup(k); err != nil || has {
			if err != nil {
				return err
			}
			continue
		}
		if err := p.w.put(k, b.Cid().Hash(), b.RawData()); err != nil {
			return err
		}
	}
	return nil
}

// DeleteBlock drops c from the indexes; its bytes go with the next gc
// that rewrites its pack.
func (p *packStore) DeleteBlock(_ context.Context, c cid.Cid) error {
	if p.w == nil {
		return errReadOnly
	}
	if err := p.w.flush(); err != nil {
		return err
	}
	drop := keyOf(c.Hash())
	return p.w.compact(func(e entry, _ string) bool { return e.key != drop }, nil)
}

// AllKeysChan lists every indexed block, as CIDv1 raw (the store keeps
// multihashes, as kubo's does). A writer first flushes, so that what it
// put is indexed.
func (p *packStore) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	if p.w != nil {
		if err := p.w.flush(); err != nil {
			return nil, err
		}
	} else if _, err := p.set.load(); err != nil {
		return nil, err
	}
	out := make(chan cid.Cid)
	go func() {
		defer close(out)
		seen := map[key]struct{}{}
		for _, x := range p.set.sorted() {
			err := x.each(func(e entry, pack string) error {
				if _, ok := seen[e.key]; ok {
					return nil
				}
				seen[e.key] = struct{}{}
				h, err := p.set.recordHash(e.loc(pack))
				if err != nil {
					return err
				}
				select {
				case out <- cid.NewCidV1(cid.Raw, h):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			if err != nil {
				return
			}
		}
	}()
	return out, nil
}

func (p *packStore) HashOnRead(bool) {}
