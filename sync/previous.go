package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// previous picks the root to diff against and the time its run started
// (for the racy-clean check). A root made with other settings, or whose
// root block is missing, cannot be reused: the run is then a full import.
func (r *run) previous(ctx context.Context, ref blockstore.Ref) (cid.Cid, error) {
	cur, hasCur := ref.Current()
	var c cid.Cid
	switch {
	case r.opts.Base != "":
		var err error
		if c, err = cid.Decode(r.opts.Base); err != nil {
			return cid.Undef, fmt.Errorf("--base %q: %w", r.opts.Base, err)
		}
		// A root from elsewhere has no known run start: trust only mtimes
		// older than this run.
		r.prevStart = r.start
		if hasCur && cur.Root == r.opts.Base {
			r.prevStart = cur.Time
		}
	case hasCur:
		var err error
		if c, err = cid.Decode(cur.Root); err != nil {
			return cid.Undef, fmt.Errorf("ref %q names a bad root %q: %w", ref.Name, cur.Root, err)
		}
		r.prevStart = cur.Time
		if cur.Profile != r.opts.Profile.String() {
			r.warn("", fmt.Errorf("settings changed since the previous root (%s); importing in full", cur.Profile))
			r.reuse = false
			return c, nil
		}
	case r.opts.Target != nil && r.opts.Target.Previous != nil:
		var err error
		if c, err = r.opts.Target.Previous(ctx, r.opts.Name); err != nil {
			// The root is the same without it; whether the target can be
			// reached is the hand-off's to say.
			r.warn("", fmt.Errorf("previous root on the target: %w; importing in full", err))
			return cid.Undef, nil
		}
		if !c.Defined() {
			return cid.Undef, nil
		}
		r.prevStart = r.start
	default:
		return cid.Undef, nil
	}
	has, err := r.store.Blockstore().Has(ctx, c)
	if err != nil {
		return cid.Undef, err
	}
	if !has && r.opts.Target != nil {
		return r.remotePrevious(ctx, c), nil
	}
	if !has {
		r.warn("", fmt.Errorf("previous root %s is not in the store; importing in full", c))
		return c, nil
	}
	// Made with the same settings, so its subtrees can stand in for a
	// directory that cannot be read, even when --full reuses nothing else.
	r.fallback = c
	r.reuse = !r.opts.Full
	r.trusted = hasCur && cur.Root == c.String() && !r.store.Damaged()
	return c, nil
}

// previousListing reads wd's previous version; nil if it is not a
// directory, or if the store lost part of the previous root: then this
// subtree is rebuilt from the source, which gives the same CIDs.
func (r *run) previousListing(ctx context.Context, wd *dirWalk) *diff.PrevDir {
	d, err := r.prevDir(ctx, wd.relPath, wd.prev.Cid, wd.idx)
	switch {
	case err == nil:
		return &d
	case errors.Is(err, diff.ErrNotDir):
	default:
		r.warn("", fmt.Errorf("%s: %w; re-reading this directory", wd.path, err))
	}
	return nil
}

// prevDir reads the previous version of the directory at relPath, whose
// CID is c: from the copy of its blocks kept in the index when that hashes
// to c (no block file opened), else from the store, and then the copy is
// refreshed for the next run. The copy is used only for a trusted root
// (see complete): reading the store is what proves the blocks are still
// there to be linked again.
func (r *run) prevDir(ctx context.Context, relPath string, c cid.Cid, idx *blockstore.DirIndex) (diff.PrevDir, error) {
	if r.trusted {
		if b, ok := idx.Blocks(); ok {
			if d, err := r.tree.DirFromBlocks(ctx, c, b); err == nil {
				return d, nil
			}
		}
	}
	d, err := r.tree.Dir(ctx, c)
	if err == nil {
		r.putDir(ctx, relPath, d.Blocks)
	}
	return d, err
}

// putDir keeps a copy of a directory's block beside its entries in the
// index (see prevDir).
func (r *run) putDir(ctx context.Context, relPath string, blocks [][]byte) {
	if r.opts.DryRun {
		return
	}
	// A failed index write only makes the next run slower.
	_ = r.index.PutDir(ctx, relPath, blocks)
}

// previousDir is the version of an unreadable directory to keep: the one
// the walk diffs against, or, when the walk reuses nothing (--full), the
// same path in the previous root made with these settings. It is nil when
// neither holds a directory there.
func (r *run) previousDir(ctx context.Context, relPath string, prev *diff.Link, pd *diff.PrevDir) *diff.Link {
	if pd != nil {
		if r.fromTarget != nil && !r.fetchSubtree(ctx, relPath, prev.Cid) {
			return nil
		}
		return prev
	}
	if prev != nil || !r.fallback.Defined() {
		return nil
	}
	l, ok := r.tree.Lookup(ctx, r.fallback, relPath)
	if !ok {
		return nil
	}
	if _, err := r.tree.Dir(ctx, l.Cid); err != nil {
		return nil
	}
	return &l
}

// knownMeta fills in what the profile implies about a previous node: where
// a field is stored at all, its absence means zero.
func (r *run) knownMeta(k metadata.Known) metadata.Known {
	if r.meta.Mode && k.Type != metadata.Symlink {
		k.HasMode = true
	}
	if r.meta.MTime {
		k.HasMTime = true
	}
	return k
}

// dirWhy compares a directory's own metadata with its previous version.
func (r *run) dirWhy(st metadata.Stat, k metadata.Known) metadata.Why {
	why := metadata.Changed(st, r.knownMeta(k)) &^ metadata.WhySize
	if !r.meta.MTime {
		why &^= metadata.WhyMTime
	}
	return why
}

// racy reports whether a file with mtime m may have been rewritten within
// one timestamp tick of the previous run reading it, keeping size and
// mtime: the quick check cannot trust it.
func (r *run) racy(m time.Time) bool {
	return !m.Before(r.prevStart.Add(-RacyWindow)) && !m.After(r.start.Add(SkewWindow))
}

// storesAny reports whether a difference in why changes a CID under the
// profile.
func (r *run) storesAny(why metadata.Why) bool {
	return why&^(metadata.WhyMode|metadata.WhyMTime) != 0 ||
		(why&metadata.WhyMode != 0 && r.meta.Mode) ||
		(why&metadata.WhyMTime != 0 && r.meta.MTime)
}
