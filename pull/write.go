package pull

import (
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// writeTemp writes the file name in d: a new file filled by fill, given
// its mode and mtime, then put in place. ls is its stat, taken before it
// is (linking or renaming changes nothing a file's record holds). fresh
// says name was absent when the entry was looked at: with the fast paths
// the file is made without a name (O_TMPFILE) and linked in once
// complete, one change to the directory instead of a create and a rename
// (on ext4, with several workers in one big directory, a third less
// time). Otherwise, or where that cannot be, it is written under a
// temporary name and renamed over name.
func (p *puller) writeTemp(d *dirNode, name, rel string, m meta, fresh bool, fill func(fd int) error) (metadata.Stat, error) {
	if fresh && p.fast && !p.noAnon.Load() {
		if fd := openAnon(d.fd); fd >= 0 {
			return p.writeAnon(d, name, rel, m, fd, fill)
		}
	}
	return p.writeNamed(d, name, rel, m, fill)
}

// writeAnon fills the file fd, which has no name yet, and links it in as
// name. If something took the name meanwhile, or the file cannot be
// linked (no /proc, no privilege: then no later file of the run is made
// without a name), it is copied under a temporary name, renamed over name.
func (p *puller) writeAnon(d *dirNode, name, rel string, m meta, fd int, fill func(fd int) error) (ls metadata.Stat, err error) {
	defer unix.Close(fd)
	if err := fill(fd); err != nil {
		return ls, err // it names its path, in the DAG or in DEST
	}
	err = p.setMeta(d, "", fd, m)
	if err == nil {
		ls, err = fstat(fd)
	}
	if err != nil {
		return ls, fmt.Errorf("DEST %s: %w", p.local(rel), err)
	}
	err = linkAnon(fd, d.fd, name)
	if err == nil {
		d.touch()
		return ls, nil
	}
	if !errors.Is(err, unix.EEXIST) {
		p.noAnon.Store(true)
	}
	return p.writeNamed(d, name, rel, m, func(dst int) error {
		if err := copySparse(dst, fd, ls.Size); err != nil {
			return fmt.Errorf("DEST %s: %w", p.local(rel), err)
		}
		return nil
	})
}

// setMeta gives the file fd (named tmp in d, if it has a name) mode and
// mtime; without the fast paths it is fsynced too (there is no syncfs at
// the end then).
func (p *puller) setMeta(d *dirNode, tmp string, fd int, m meta) error {
	mode := uint32(0o644)
	if m.hasMode {
		mode = m.mode
	}
	// fchmod rather than the create mode: the umask must not apply.
	err := unix.Fchmod(fd, mode)
	if err == nil && m.hasMTime {
		err = fsat.SetMTime(d.fd, tmp, fd, m.mtime)
	}
	if err == nil && !p.fast {
		err = unix.Fsync(fd)
	}
	return err
}

// writeNamed creates a temporary file in d, fills it with fill, gives it
// its mode and mtime, and renames it over name (removing a directory that
// was there). On any error the temporary file is removed.
func (p *puller) writeNamed(d *dirNode, name, rel string, m meta, fill func(fd int) error) (ls metadata.Stat, err error) {
	tmp := tmpName()
	fd, err := fsat.Open(d.fd, tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return ls, fmt.Errorf("DEST %s: %w", p.local(rel), err)
	}
	if err := fill(fd); err != nil {
		// fill's errors name their path (in the DAG or in DEST).
		unix.Close(fd)
		unix.Unlinkat(d.fd, tmp, 0)
		return ls, err
	}
	err = p.setMeta(d, tmp, fd, m)
	if err == nil {
		ls, err = fstat(fd)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(d.fd, tmp, d.fd, name)
		if errors.Is(err, unix.EISDIR) {
			// A directory is where the file goes: it is replaced.
			if err = removeAt(d.fd, name); err == nil {
				err = unix.Renameat(d.fd, tmp, d.fd, name)
			}
		}
	}
	d.touch()
	if err != nil {
		unix.Unlinkat(d.fd, tmp, 0)
		return ls, fmt.Errorf("DEST %s: %w", p.local(rel), err)
	}
	return ls, nil
}

// record notes in the index that name now holds c.
func (p *puller) record(d *dirNode, name, rel string, c cid.Cid) error {
	ls, err := lstatAt(d.fd, name)
	if err != nil {
		return fmt.Errorf("DEST %s: %w", p.local(rel), err)
	}
	return p.st.put(record{Path: rel, Cid: c, Local: ls})
}

// finish runs after every entry is written, depth first: it removes the
// local entries the root does not have, then gives each directory its
// mode and mtime, children before parents (each change inside a directory
// moves its mtime).
func (p *puller) finish(d *dirNode, fd int) error {
	for _, name := range d.deletes {
		removed, err := true, error(nil)
		if p.o.Delete == DeleteAll {
			err = removeAt(fd, name)
		} else {
			removed, err = p.removeWritten(fd, name, join(d.rel, name))
		}
		if err != nil {
			return fmt.Errorf("DEST %s: remove: %w", p.local(join(d.rel, name)), err)
		}
		if removed {
			p.deleted.Add(1)
		} else {
			d.foreign.Store(true)
		}
	}
	for _, name := range d.leftovers {
		if err := removeAt(fd, name); err != nil {
			return fmt.Errorf("DEST %s: remove leftover: %w", p.local(join(d.rel, name)), err)
		}
	}
	for _, c := range d.children {
		if !c.dirty.Load() && !c.below.Load() {
			continue
		}
		cfd, err := fsat.OpenDir(fd, c.name)
		if err != nil {
			return fmt.Errorf("DEST %s: %w", p.local(c.rel), err)
		}
		err = p.finish(c, cfd)
		unix.Close(cfd)
		if err != nil {
			return err
		}
	}
	ls, err := fstat(fd)
	if err != nil {
		return fmt.Errorf("DEST %s: %w", p.local(d.rel), err)
	}
	mode := d.mode
	switch {
	case d.meta.hasMode:
		mode = d.meta.mode
	case d.created:
		mode = 0o755
	}
	if unixPerms(ls.Mode) != mode {
		if err := unix.Fchmod(fd, mode); err != nil {
			return fmt.Errorf("DEST %s: %w", p.local(d.rel), err)
		}
	}
	if d.meta.hasMTime && ls.MTime.UnixNano() != d.meta.mtime {
		if err := fsat.SetMTime(fd, ".", fd, d.meta.mtime); err != nil {
			return fmt.Errorf("DEST %s: %w", p.local(d.rel), err)
		}
	}
	if !p.fast {
		// No syncfs at the end (durable): its entries, mode and mtime now.
		if err := unix.Fsync(fd); err != nil {
			return fmt.Errorf("DEST %s: %w", p.local(d.rel), err)
		}
	}
	return p.recordDir(d, fd)
}
