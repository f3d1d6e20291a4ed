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
	a := &applier{c: c, w: w, real: map[string]bool{}}
	for _, step := range []func() error{
		a.remove, a.makeDirs, a.move, a.write, a.removeEmptied, a.touch, a.chmod, a.setDirMeta,
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// applier carries out one cycle's plan with w; real holds the directories
// lstat has found to be directories.
type applier struct {
	c    *cycle
	w    writer
	real map[string]bool
}

// check lstats p's parent when it was there before the cycle.
func (a *applier) check(p string) error {
	d := parentOf(p)
	if _, ok := a.c.before[d]; !ok {
		return nil
	}
	return a.w.realDir(d, a.real)
}

func (a *applier) checkAll(files []fileSpec) error {
	for _, f := range files {
		if err := a.check(f.path); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) remove() error {
	for _, p := range a.c.removes {
		if err := a.check(p); err != nil {
			return err
		}
		if err := os.Remove(a.w.abs(p)); err != nil {
			return fmt.Errorf("remove: %w", err)
		}
	}
	return nil
}

func (a *applier) makeDirs() error {
	for _, d := range a.c.newDirs {
		if err := a.check(d.path); err != nil {
			return err
		}
		if err := os.Mkdir(a.w.abs(d.path), 0o755); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
	}
	return nil
}

func (a *applier) move() error {
	for _, m := range a.c.moves {
		if err := a.check(m[0]); err != nil {
			return err
		}
		if err := a.check(m[1]); err != nil {
			return err
		}
		if _, err := os.Lstat(a.w.abs(m[1])); err == nil {
			return fmt.Errorf("move %s: %s exists", m[0], m[1])
		}
		if err := os.Rename(a.w.abs(m[0]), a.w.abs(m[1])); err != nil {
			return fmt.Errorf("move: %w", err)
		}
	}
	return nil
}

// write writes the new files, then replaces the rewritten ones.
func (a *applier) write() error {
	if err := a.checkAll(a.c.writes); err != nil {
		return err
	}
	if err := a.w.writeFiles(a.c.writes, false); err != nil {
		return err
	}
	if err := a.checkAll(a.c.rewrites); err != nil {
		return err
	}
	return a.w.writeFiles(a.c.rewrites, true)
}

// removeEmptied removes the emptied directories, deepest first.
func (a *applier) removeEmptied() error {
	slices.SortStableFunc(a.c.pruned, func(x, y string) int { return cmpInt(depth(y), depth(x)) })
	for _, d := range a.c.pruned {
		if err := a.check(d); err != nil {
			return err
		}
		if err := os.Remove(a.w.abs(d)); err != nil {
			return fmt.Errorf("remove emptied directory: %w", err)
		}
	}
	return nil
}

func (a *applier) touch() error {
	for _, p := range sortedKeys(a.c.touches) {
		if err := a.check(p); err != nil {
			return err
		}
		if err := setMtime(a.w.abs(p), a.c.touches[p]); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

func (a *applier) chmod() error {
	for _, p := range sortedKeys(a.c.chmods) {
		if err := a.check(p); err != nil {
			return err
		}
		if err := chmodNoFollow(a.w.abs(p), a.c.chmods[p]); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

// setDirMeta sets the modes and mtimes of the directories the cycle made or
// changed, last: every step before it would move their mtimes.
func (a *applier) setDirMeta() error {
	for _, d := range a.c.dirTimes {
		if err := a.w.realDir(d.path, a.real); err != nil {
			return err
		}
	}
	if err := a.w.dirMeta(a.c.newDirs); err != nil {
		return err
	}
	return a.w.dirMeta(a.c.dirTimes)
}
