package blockstore

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// compact replaces every idx by one holding the entries keep accepts (all
// when nil), each key once, leaving out the packs in drop. Only named,
// durable indexes are merged: flush first. The new idx is durable before
// the old ones go, and they are gone (durably) before the caller deletes
// any dropped pack. An entry of a version 1 idx gets its sum here, from
// its block checked against the CID (withSum).
func (w *packWriter) compact(keep func(entry, string) bool, drop map[string]bool) error {
	xs := w.set.sorted()
	var packs []string
	seen := map[string]bool{}
	for _, x := range xs {
		if strings.HasSuffix(x.name, ".new") {
			return fmt.Errorf("compact %s: index %s not yet durable", w.set.dir, x.name)
		}
		for _, p := range x.packs {
			if !seen[p] && !drop[p] {
				seen[p] = true
				packs = append(packs, p)
			}
		}
	}
	slices.Sort(packs)
	name := randomName() + ".idx"
	tmp := filepath.Join(w.set.dir, name+".tmp")
	iw, err := newIdxWriter(tmp, packs)
	if err != nil {
		return fmt.Errorf("write index %s: %w", tmp, err)
	}
	err = mergeEntries(xs, func(e entry, pack string) error {
		if drop[pack] || (keep != nil && !keep(e, pack)) || iw.dup(e.key) {
			return nil
		}
		l, err := w.set.withSum(e.loc(pack))
		if err != nil {
			return err
		}
		iw.add(e.key, l)
		return nil
	})
	if err != nil {
		iw.f.Close()
		os.Remove(tmp)
		return err
	}
	if err := iw.finish(true); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(w.set.dir, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("name index: %w", err)
	}
	x, err := loadIdx(filepath.Join(w.set.dir, name))
	if err != nil {
		return err
	}
	if err := syncDir(w.set.dir); err != nil {
		return err
	}
	w.set.mu.Lock()
	for _, old := range xs {
		old.close()
		delete(w.set.idx, old.name)
	}
	w.set.idx[x.name] = x
	w.set.mu.Unlock()
	for _, old := range xs {
		if err := os.Remove(filepath.Join(w.set.dir, old.name)); err != nil {
			return fmt.Errorf("remove index: %w", err)
		}
	}
	return syncDir(w.set.dir)
}

// mergeEntries calls fn for the entries of xs in key order (a key held
// by several indexes comes once per index, adjacent).
func mergeEntries(xs []*idxFile, fn func(entry, string) error) error {
	var cs []*cursor
	for _, x := range xs {
		c := newCursor(x)
		if c.next() {
			cs = append(cs, c)
		}
		if c.err != nil {
			return c.err
		}
	}
	for len(cs) > 0 {
		m := 0
		for i := 1; i < len(cs); i++ {
			if string(cs[i].e.key[:]) < string(cs[m].e.key[:]) {
				m = i
			}
		}
		if err := fn(cs[m].e, cs[m].x.packs[cs[m].e.pack]); err != nil {
			return err
		}
		if !cs[m].next() {
			if cs[m].err != nil {
				return cs[m].err
			}
			cs = slices.Delete(cs, m, m+1)
		}
	}
	return nil
}

// cursor reads an idx's entries in order.
type cursor struct {
	x    *idxFile
	r    *bufio.Reader
	left int
	e    entry
	err  error
}

func newCursor(x *idxFile) *cursor {
	return &cursor{x: x, left: x.count, r: bufio.NewReaderSize(io.NewSectionReader(x.f, x.entries, int64(x.count)*int64(x.esize)), 1<<16)}
}

func (c *cursor) next() bool {
	if c.left == 0 {
		return false
	}
	var b [entrySize]byte
	if _, err := io.ReadFull(c.r, b[:c.x.esize]); err != nil {
		c.err = fmt.Errorf("read index %s: %w", c.x.name, err)
		return false
	}
	c.left--
	c.e = decodeIdxEntry(b[:], c.x.esize)
	return true
}
