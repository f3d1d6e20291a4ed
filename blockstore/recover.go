package blockstore

import (
	"os"
	"path/filepath"
	"strings"
)

// recover clears what a run that did not finish left: indexes not yet
// named, temporary files, and packs no idx names. Only the lock holder
// may call it.
func (w *packWriter) recover() error {
	des, err := os.ReadDir(w.set.dir)
	if err != nil {
		return err
	}
	for _, d := range des {
		if n := d.Name(); strings.HasSuffix(n, ".new") || strings.HasSuffix(n, ".tmp") {
			if err := os.Remove(filepath.Join(w.set.dir, n)); err != nil {
				return err
			}
		}
	}
	if _, err := w.set.load(); err != nil {
		return err
	}
	w.set.mu.RLock()
	used := w.set.packNamesLocked()
	w.set.mu.RUnlock()
	packs, err := listSuffix(w.set.dir, ".pack")
	if err != nil {
		return err
	}
	for _, n := range packs {
		if !used[strings.TrimSuffix(n, ".pack")] {
			if err := os.Remove(filepath.Join(w.set.dir, n)); err != nil {
				return err
			}
		}
	}
	return nil
}
