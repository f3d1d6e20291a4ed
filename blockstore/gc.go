package blockstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// GCResult is what a collection did.
type GCResult struct {
	Roots      int   `json:"roots"`
	Kept       int64 `json:"blocks_kept"`
	Removed    int64 `json:"blocks_removed"`
	BytesFreed int64 `json:"bytes_freed"`
	BytesKept  int64 `json:"bytes_kept"`
	// Cloned counts the blocks moved by cloning their pack's extents
	// (reflink.go): on a file system with reflinks, what gc moves stays
	// shared with the files it was cloned from.
	Cloned int64 `json:"blocks_cloned"`
}

// GC removes every block that is under none of roots. It needs the write
// lock (no sync can add blocks meanwhile); readers such as serve keep
// working and only lose blocks nobody references.
//
// Marking reads only blocks that can have children (see Reach); the one
// block that could hide behind that rule is an empty one, so empty blocks
// are never removed; they cost nothing.
//
// A removed block leaves the indexes at once; its bytes go when its pack
// is rewritten, which happens to every pack whose live blocks fill less
// than repackBelow of it (and to small packs, see maxSmallPacks): their
// live blocks are copied into new packs, and the old packs deleted once
// the new ones and an index without the old are durable.
func (s *Store) GC(ctx context.Context, roots []cid.Cid) (GCResult, error) {
	if s.lock == nil || s.packs.w == nil {
		return GCResult{}, errors.New("gc needs the repository opened for writing")
	}
	g := &collection{s: s, w: s.packs.w, state: map[key]blockState{}, res: GCResult{Roots: len(roots)}}
	if err := g.w.flush(); err != nil {
		return GCResult{}, err
	}
	if err := g.mark(ctx, roots); err != nil {
		return g.res, err
	}
	g.xs = s.packs.set.sorted()
	if err := g.choose(); err != nil {
		return g.res, fmt.Errorf("gc: %w", err)
	}
	if err := g.repack(); err != nil {
		return g.res, fmt.Errorf("gc: %w", err)
	}
	if err := g.sweep(); err != nil {
		return g.res, fmt.Errorf("gc: %w", err)
	}
	return g.res, nil
}

// collection is one GC's work: mark, choose, repack, sweep, in that order.
type collection struct {
	s       *Store
	w       *packWriter
	xs      []*idxFile // the indexes, in name order
	state   map[key]blockState
	rewrite map[string]bool // packs whose live blocks are copied into new ones
	stale   *staleRefs      // references whose files changed (nocopy.go)
	res     GCResult
}

// blockState is what a collection knows of a block: dead (not reached),
// live, or live and placed (kept where it is, or copied into a new pack).
type blockState uint8

const (
	dead blockState = iota
	live
	placed
)

// mark makes every block under roots live; a root missing a block stops
// the collection before anything is removed.
func (g *collection) mark(ctx context.Context, roots []cid.Cid) error {
	visit := func(c cid.Cid) bool {
		k := keyOf(c.Hash())
		if _, ok := g.state[k]; ok {
			return false
		}
		g.state[k] = live
		return true
	}
	for _, r := range roots {
		if err := g.s.Reach(ctx, r, 0, visit); err != nil {
			return fmt.Errorf("gc: root %s is incomplete, nothing removed: %w", r, err)
		}
	}
	return nil
}

// choose picks the packs to rewrite: those live blocks fill less than
// repackBelow of, and the small ones once there are more than
// maxSmallPacks. Empty blocks become live here (see GC).
func (g *collection) choose() error {
	liveBytes := map[string]int64{}
	for _, x := range g.xs {
		err := x.each(func(e entry, pack string) error {
			if e.size == 0 {
				g.state[e.key] = max(g.state[e.key], live)
			}
			if g.state[e.key] != dead {
				liveBytes[pack] += int64(recordHead + 34 + recordData(e)) // about: most multihashes are 34 bytes
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	g.rewrite = map[string]bool{}
	var small []string
	for _, x := range g.xs {
		for _, p := range x.packs {
			st, err := os.Stat(filepath.Join(g.w.set.dir, p+".pack"))
			if err != nil {
				return err
			}
			switch {
			case liveBytes[p] < st.Size()*repackBelow/100:
				g.rewrite[p] = true
			case st.Size() < g.w.limit/8:
				small = append(small, p)
			}
		}
	}
	// Each run adds a pack, small for a small change: gathering them keeps
	// the number of packs (files a reader holds open) bounded.
	if len(small) > maxSmallPacks {
		for _, p := range small {
			g.rewrite[p] = true
		}
	}
	return nil
}

// repack copies the live blocks of the packs to rewrite into new packs,
// each block once, and counts the dead ones.
func (g *collection) repack() error {
	// Blocks staying where they are first, so that a block held by a kept
	// and a rewritten pack is not copied.
	for _, x := range g.xs {
		err := x.each(func(e entry, pack string) error {
			if !g.rewrite[pack] && g.state[e.key] == live && !g.dropRef(e, pack) {
				g.state[e.key] = placed
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, x := range g.xs {
		err := x.each(func(e entry, pack string) error {
			switch {
			case g.state[e.key] == dead:
				g.res.Removed++
				g.res.BytesFreed += int64(e.size)
				return nil
			case !g.rewrite[pack] || g.state[e.key] == placed || g.dropRef(e, pack):
				return nil
			}
			g.state[e.key] = placed
			return g.copyBlock(e.loc(pack))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// copyBlock puts the block at l into the open pack, checked against its
// sum and CID first: a corrupt block is not carried into a new pack.
func (g *collection) copyBlock(l loc) error {
	h, err := g.w.set.recordHash(l)
	if err != nil {
		return err
	}
	if l.kind == kindRef {
		return g.w.copyRef(l, h)
	}
	data, err := g.w.set.read(l, h, nil, true)
	if err != nil {
		return err
	}
	if cloned, err := g.w.cloneRecord(l, h, data); cloned || err != nil {
		if cloned {
			g.res.Cloned++
		}
		return err
	}
	return g.w.put(keyOf(h), h, data)
}

// sweep makes the copies durable, replaces the indexes by one naming
// only placed blocks, and then deletes the rewritten packs.
func (g *collection) sweep() error {
	// Not flush: its merge could keep a block's old place and drop the copy.
	if err := g.w.sync(false); err != nil {
		return err
	}
	err := g.w.compact(func(e entry, pack string) bool {
		if g.state[e.key] != placed || g.dropRef(e, pack) {
			return false
		}
		g.res.Kept++
		g.res.BytesKept += int64(e.size)
		return true
	}, g.rewrite)
	if err != nil {
		return err
	}
	for p := range g.rewrite {
		if err := os.Remove(filepath.Join(g.w.set.dir, p+".pack")); err != nil {
			return err
		}
	}
	g.w.set.mu.Lock()
	g.w.set.closeUnusedLocked()
	g.w.set.mu.Unlock()
	return nil
}

// repackBelow is the share (percent) of a pack that live blocks must fill
// for gc to leave it as it is; beyond maxSmallPacks packs under an eighth
// of the size limit, gc gathers those too.
const (
	repackBelow   = 75
	maxSmallPacks = 8
)

// Reach visits c and every block under it, each subtree once per true
// answer of visit (false: already seen, skip it). It reads only blocks that
// can have children: a raw block has none, and a dag-pb block whose stored
// size equals the Tsize its parent records for it (tsize; 0 for a root,
// which is always read) has no non-empty children, since Tsize counts a
// block and everything under it. An empty child can hide behind that rule,
// which is why gc never removes empty blocks. A missing block is an error.
func (s *Store) Reach(ctx context.Context, c cid.Cid, tsize uint64, visit func(cid.Cid) bool) error {
	if c.Prefix().MhType == mh.IDENTITY || !visit(c) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.Prefix().Codec != cid.DagProtobuf || tsize != 0 {
		size, err := s.bs.GetSize(ctx, c)
		if err != nil {
			return fmt.Errorf("block %s: %w", c, err)
		}
		if c.Prefix().Codec != cid.DagProtobuf || uint64(size) == tsize {
			return nil
		}
	}
	b, err := s.bs.Get(ctx, c)
	if errors.Is(err, ErrUnavailable) {
		return nil // a reference (nocopy.go) is a leaf: nothing under it
	}
	if err != nil {
		return fmt.Errorf("block %s: %w", c, err)
	}
	nd, err := mdag.DecodeProtobuf(b.RawData())
	if err != nil {
		return fmt.Errorf("block %s: %w", c, err)
	}
	for _, l := range nd.Links() {
		if err := s.Reach(ctx, l.Cid, l.Size, visit); err != nil {
			return err
		}
	}
	return nil
}

// FsckResult is what a check found.
type FsckResult struct {
	Roots   int   `json:"roots"`
	Blocks  int64 `json:"blocks"`
	Bytes   int64 `json:"bytes"`
	Missing int64 `json:"missing"`
	Corrupt int64 `json:"corrupt"`
	// Unavailable: blocks stored as references (sync --nocopy) whose
	// files changed since; not damage, the repository holds what it
	// promised (nocopy.go).
	Unavailable int64 `json:"unavailable"`
	Removed     int64 `json:"removed,omitempty"` // corrupt blocks removed by repair
}

// Fsck reads every block under roots and checks it against its sum and
// that it hashes to its CID (the check reads skip, verify.go),
// reporting each missing or corrupt block with the path it was reached by.
// With repair, corrupt blocks are removed: the next sync then finds them
// missing and reads the affected files from the source again.
func (s *Store) Fsck(ctx context.Context, roots []cid.Cid, repair bool, report func(c cid.Cid, path string, err error)) (FsckResult, error) {
	res := FsckResult{Roots: len(roots)}
	seen := cid.NewSet()
	marked := false
	var walk func(c cid.Cid, path string) error
	walk = func(c cid.Cid, path string) error {
		if c.Prefix().MhType == mh.IDENTITY || !seen.Visit(c) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := s.readThorough(ctx, c)
		switch {
		case errors.Is(err, ErrUnavailable):
			res.Unavailable++
			report(c, path, err)
			return nil
		case errors.Is(err, ErrCorrupt):
			res.Corrupt++
			report(c, path, err)
			if repair {
				// Marked, durably, before the first removal: a repair
				// interrupted after it (SIGINT, a crash) would otherwise
				// leave a ref whose root lacks the block and no mark, and
				// the next sync would trust that root and reuse it.
				if !marked {
					if err := s.markDamaged(); err != nil {
						return err
					}
					marked = true
				}
				if err := s.bs.DeleteBlock(ctx, c); err != nil {
					return fmt.Errorf("remove corrupt block %s: %w", c, err)
				}
				res.Removed++
			}
			return nil
		case errors.Is(err, ipld.ErrNotFound{Cid: c}) || ipld.IsNotFound(err):
			res.Missing++
			report(c, path, err)
			return nil
		case err != nil:
			return err
		}
		res.Blocks++
		res.Bytes += int64(len(b.RawData()))
		if c.Prefix().Codec != cid.DagProtobuf {
			return nil
		}
		nd, err := mdag.DecodeProtobuf(b.RawData())
		if err != nil {
			res.Corrupt++
			report(c, path, err)
			return nil
		}
		for _, l := range nd.Links() {
			p := path
			if l.Name != "" {
				p += "/" + l.Name
			}
			if err := walk(l.Cid, p); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range roots {
		if err := walk(r, r.String()); err != nil {
			return res, err
		}
	}
	if res.Missing+res.Corrupt > 0 {
		if marked {
			return res, nil
		}
		return res, s.markDamaged()
	}
	return res, s.clearDamaged()
}

// damagedFile marks a store in which fsck found a root with holes. Until a
// clean fsck removes it, sync checks that every block of a file it reuses
// unread is present (Store.Damaged); otherwise it trusts the previous
// root, which was complete and synced to disk when its ref moved, and gc
// never removes a block of a ref's current root.
const damagedFile = "damaged"

// Damaged reports whether fsck found missing or corrupt blocks since the
// last clean fsck.
func (s *Store) Damaged() bool {
	_, err := os.Stat(filepath.Join(s.dir, damagedFile))
	return err == nil
}

// markDamaged writes the mark durably (fsynced, renamed into place, the
// directory fsynced): a flush of the store need not sync anything (a run
// that wrote no block has nothing to flush), so it would not do.
func (s *Store) markDamaged() error {
	path := filepath.Join(s.dir, damagedFile)
	if err := writeFileAtomic(path, []byte(time.Now().UTC().Format(time.RFC3339)+"\n")); err != nil {
		return fmt.Errorf("mark %s damaged: %w", s.dir, err)
	}
	return nil
}

func (s *Store) clearDamaged() error {
	if err := os.Remove(filepath.Join(s.dir, damagedFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clear damage mark of %s: %w", s.dir, err)
	}
	return nil
}
