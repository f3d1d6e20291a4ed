package blockstore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
)

// sealLocked finishes a pack no more blocks go into: its records written
// out, the padding cut off, and its idx written as .idx.new. Failed or
// not, the pack is let go: its stage's buffer back in free, its
// descriptor closed after its last write.
func (w *packWriter) sealLocked(p *openPack) error {
	ahead := w.idxAhead(p)
	err := w.writeOutLocked(p, true)
	w.releaseStageLocked(p)
	if err == nil {
		err = p.f.Truncate(p.size)
		if err == nil && !w.fast {
			err = p.f.Sync() // no syncfs at the flush
		}
		if err != nil {
			err = w.writeErr(p, err)
		}
	}
	w.closeDirectLocked(p)
	var idx sealedIdx
	if ahead != nil {
		idx = <-ahead
	} else {
		p.entMu.Lock()
		idx.ents = p.ents
		p.ents = nil
		p.entMu.Unlock()
	}
	if err != nil {
		idx.drop()
		return err
	}
	if len(idx.ents) == 0 {
		w.set.mu.Lock()
		w.set.dropLocked(p.name)
		w.set.mu.Unlock()
		return os.Remove(filepath.Join(w.set.dir, p.name+".pack"))
	}
	if ahead == nil {
		idx = w.writeIdx(p.name, idx.ents)
	}
	if idx.err != nil {
		return idx.err
	}
	w.set.add(idx.x)
	if w.cur == nil && w.clones.cur == nil {
		// No other pack is open, and each one sealed before took its
		// entries out: every entry is p's (a flush's last seal, where
		// the loop below took ~4 ms of a 25,000-file import's end).
		w.pmu.Lock()
		clear(w.pending)
		w.clearCopied()
		w.pmu.Unlock()
		for i := range w.pendingRefs {
			sh := &w.pendingRefs[i]
			sh.mu.Lock()
			clear(sh.m)
			sh.mu.Unlock()
		}
	} else {
		w.pmu.Lock()
		for _, e := range idx.ents {
			if w.pending[e.key].pack == p.name {
				delete(w.pending, e.key)
			}
		}
		w.pmu.Unlock()
		for _, e := range idx.ents {
			if e.kind != kindRef {
				continue
			}
			sh := w.refShard(e.key)
			sh.mu.Lock()
			if sh.m[e.key].pack == p.name {
				delete(sh.m, e.key)
			}
			sh.mu.Unlock()
		}
	}
	w.unnamed = append(w.unnamed, idx.x.name)
	return nil
}

// sealedIdx is a sealed pack's entries and their idx, written as
// .idx.new and loaded (x), or the error that stopped it.
type sealedIdx struct {
	ents []entry
	x    *idxFile
	err  error
}

// drop lets go of an idx written for a pack whose records failed.
func (s sealedIdx) drop() {
	if s.x != nil {
		s.x.close()
		os.Remove(s.x.f.Name())
	}
}

// idxAhead writes p's idx on another goroutine while p's last stage is
// written out, where every record of p is claimed already: no stage
// handed off is in flight (the copies into a stage, which claim its
// records, end before it is written), and the copies into the stage
// being filled have ended. nil otherwise (or without entries): the idx
// is written after, as the records of those stages may not be claimed
// yet, nor those of a clone pack (reflink.go), which has no stage and
// claims a checked clone after its write. The last seal of a --nocopy
// import sorted and wrote its 30,000 entries (~4 ms) after the ~3 ms
// write of its last stage.
func (w *packWriter) idxAhead(p *openPack) <-chan sealedIdx {
	st := p.st
	if st == nil || p.flying.Load() != 0 || p.failed() != nil {
		return nil
	}
	st.copies.Wait()
	p.entMu.Lock()
	ents := p.ents
	if len(ents) > 0 {
		p.ents = nil
	}
	p.entMu.Unlock()
	if len(ents) == 0 {
		return nil
	}
	ahead := make(chan sealedIdx, 1)
	go func() { ahead <- w.writeIdx(p.name, ents) }()
	return ahead
}

// writeIdx sorts the entries of the pack called name and writes their
// idx, as .idx.new, and hands it over loaded.
func (w *packWriter) writeIdx(name string, ents []entry) sealedIdx {
	sortEntries(ents)
	path := filepath.Join(w.set.dir, name+".idx.new")
	iw, err := newIdxWriter(path, []string{name})
	if err != nil {
		return sealedIdx{ents: ents, err: fmt.Errorf("write index %s: %w", path, err)}
	}
	iw.indexAs(len(ents))
	for _, e := range ents {
		iw.add(e.key, e.loc(name))
	}
	if err := iw.finish(!w.fast); err != nil {
		return sealedIdx{ents: ents, err: err}
	}
	x, err := iw.loaded(path)
	return sealedIdx{ents: ents, x: x, err: err}
}

// maxIdx is how many indexes a flush leaves before merging them into one:
// a lookup reads one per idx whose Bloom filter lets it through.
const maxIdx = 8

// flush makes every block put so far durable and visible to readers: the
// open pack is sealed, one syncfs(2) writes packs and indexes (without
// the fast paths, each was fsynced when sealed, and their directory is),
// and the indexes are named. If that leaves more than maxIdx, they are
// merged.
func (w *packWriter) flush() error {
	return w.sync(true)
}

func (w *packWriter) sync(merge bool) error {
	w.mu.Lock()
	if p := w.cur; p != nil {
		w.cur = nil
		if err := w.sealLocked(p); err != nil {
			w.mu.Unlock()
			return err
		}
	}
	if err := w.sealClonesLocked(); err != nil {
		w.mu.Unlock()
		return err
	}
	names := w.unnamed
	w.unnamed = nil
	w.dropAIOLocked()
	w.mu.Unlock()
	if len(names) == 0 {
		return nil
	}
	if err := w.syncSealed(); err != nil {
		return err
	}
	for _, n := range names {
		final := strings.TrimSuffix(n, ".new")
		if err := os.Rename(filepath.Join(w.set.dir, n), filepath.Join(w.set.dir, final)); err != nil {
			return fmt.Errorf("name index: %w", err)
		}
		w.set.mu.Lock()
		x := w.set.idx[n]
		delete(w.set.idx, n)
		x.name = final
		w.set.idx[final] = x
		w.set.mu.Unlock()
	}
	if err := syncDir(w.set.dir); err != nil {
		return err
	}
	w.set.mu.RLock()
	n := len(w.set.idx)
	w.set.mu.RUnlock()
	if merge && n > maxIdx {
		return w.compact(nil, nil)
	}
	return nil
}

// syncSealed makes the packs and indexes sealed since the last flush
// durable, with their names in the directory: one syncfs(2) where fast;
// without it each was fsynced when sealed, and the directory is left.
func (w *packWriter) syncSealed() error {
	if !w.fast {
		return syncDir(w.set.dir)
	}
	d, err := os.Open(w.set.dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", w.set.dir, err)
	}
	defer d.Close()
	if err := fsat.SyncFS(int(d.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", w.set.dir, err)
	}
	return nil
}
