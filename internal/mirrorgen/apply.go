package mirrorgen

import (
	"fmt"
	"os"
	"slices"
)

// apply carries the plan out on disk. Nothing below a symlink is touched:
// every directory that was there before and is written in or removed from
// is checked with lstat first (the ones the cycle makes are below those).
func (c *cycle) apply(w writer) error {
	real := map[string]bool{}
	check := func(p string) error {
		d := parentOf(p)
		if _, ok := c.before[d]; !ok {
			return nil
		}
		return w.realDir(d, real)
	}
	checkAll := func(files []fileSpec) error {
		for _, f := range files {
			if err := check(f.path); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range c.removes {
		if err := check(p); err != nil {
			return err
		}
		if err := os.Remove(w.abs(p)); err != nil {
			return fmt.Errorf("remove: %w", err)
		}
	}
	for _, d := range c.newDirs {
		if err := check(d.path); err != nil {
			return err
		}
		if err := os.Mkdir(w.abs(d.path), 0o755); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
	}
	for _, m := range c.moves {
		if err := check(m[0]); err != nil {
			return err
		}
		if err := check(m[1]); err != nil {
			return err
		}
		if _, err := os.Lstat(w.abs(m[1])); err == nil {
			return fmt.Errorf("move %s: %s exists", m[0], m[1])
		}
		if err := os.Rename(w.abs(m[0]), w.abs(m[1])); err != nil {
			return fmt.Errorf("move: %w", err)
		}
	}
	if err := checkAll(c.writes); err != nil {
		return err
	}
	if err := w.writeFiles(c.writes, false); err != nil {
		return err
	}
	if err := checkAll(c.rewrites); err != nil {
		return err
	}
	if err := w.writeFiles(c.rewrites, true); err != nil {
		return err
	}
	// Emptied directories, deepest first.
	slices.SortStableFunc(c.pruned, func(a, b string) int { return cmpInt(depth(b), depth(a)) })
	for _, d := range c.pruned {
		if err := check(d); err != nil {
			return err
		}
		if err := os.Remove(w.abs(d)); err != nil {
			return fmt.Errorf("remove emptied directory: %w", err)
		}
	}
	for _, p := range sortedKeys(c.touches) {
		if err := check(p); err != nil {
			return err
		}
		if err := setMtime(w.abs(p), c.touches[p]); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	for _, p := range sortedKeys(c.chmods) {
		if err := check(p); err != nil {
			return err
		}
		if err := chmodNoFollow(w.abs(p), c.chmods[p]); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	for _, d := range c.dirTimes {
		if err := w.realDir(d.path, real); err != nil {
			return err
		}
	}
	if err := w.dirMeta(c.newDirs); err != nil {
		return err
	}
	return w.dirMeta(c.dirTimes)
}
