package pull

import (
	"context"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
)

// A whole new subtree (a directory DEST does not have, or a group of a new
// HAMT directory's entries) is fetched as one CAR with dag-scope=all rather
// than block by block: one round trip and one set of HTTP headers instead
// of one per block, which on a mirror of small files is most of the
// requests and a few percent of the bytes. Its blocks wait in memory until
// the entries that need them are written; the budget bounds that memory.
const (
	subtreeMax     = 16 << 20 // largest subtree (by its link's Tsize) fetched whole
	prefetchBudget = 64 << 20 // blocks held ahead at any moment
)

// prefetch holds blocks read ahead, each until its first use.
type prefetch struct {
	mu     sync.Mutex
	blocks map[cid.Cid][]byte
	held   int64 // bytes in blocks plus reservations
}

// reserve claims n bytes of the budget.
func (f *prefetch) reserve(n int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held+n > prefetchBudget {
		return false
	}
	f.held += n
	return true
}

// has reports whether c was read ahead.
func (f *prefetch) has(c cid.Cid) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.blocks[c]
	return ok
}

// take removes and returns a block.
func (f *prefetch) take(c cid.Cid) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.blocks[c]
	if ok {
		delete(f.blocks, c)
		f.held -= int64(len(d))
	}
	return d, ok
}

// subtree fetches everything under c (whose link says tsize bytes) into
// the prefetch buffer, if the source can and the budget allows; wait says
// how long to wait for budget. A gateway that sends more than tsize, or
// anything else, is simply cut off: what is missing is fetched block by
// block later, and every block is verified either way.
func (p *puller) subtree(ctx context.Context, c cid.Cid, tsize uint64, wait time.Duration) bool {
	if tsize == 0 || tsize > p.subtreeMax {
		return false
	}
	n := int64(tsize)
	deadline := time.Now().Add(wait)
	for !p.pre.reserve(n) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	var used int64
	defer func() {
		p.pre.mu.Lock()
		p.pre.held += used - n
		p.pre.mu.Unlock()
	}()
	s, err := p.src.CAR(ctx, c, "all")
	if err != nil || s == nil {
		return false
	}
	defer s.Close()
	for used < n {
		b, err := s.Next()
		if err != nil {
			break
		}
		p.pre.mu.Lock()
		if _, dup := p.pre.blocks[b.Cid()]; !dup {
			p.pre.blocks[b.Cid()] = b.RawData()
			used += int64(len(b.RawData()))
		}
		p.pre.mu.Unlock()
	}
	return true
}
