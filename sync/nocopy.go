package sync

import (
	"path/filepath"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/diff"
)

// With Options.NoCopy a file's leaves are stored as references to its
// bytes (blockstore/nocopy.go), which hold only while the file is the
// one that was read: same device, inode, size, mtime and change time.
// The quick check passes size and mtime; the index entry adds the
// device, inode and change time the file had when it was referenced,
// since rsync replaces a rewritten file (a new inode) and may keep both,
// and a rewrite in place that sets the mtime back moves the change time.
// A referenced file is read again by a copying run, so that turning
// --nocopy off copies the ref's files again; a copied file stays as it
// is in a --nocopy run until it changes (a copy never goes unavailable).

// fileID is a referenced file's device, inode and change time as the
// index keeps them; zero for a copied file.
type fileID struct {
	dev, ino uint64
	ctime    int64
}

// refers reports whether this run stores the leaves of the file at rel,
// called name, as references: --nocopy, and no --copy pattern matches it.
func (r *run) refers(rel, name string) bool {
	return r.opts.NoCopy && (len(r.opts.Copy) == 0 || diff.Filter{Hidden: true, Rules: r.opts.Copy}.Include(rel, name, false))
}

// storedAsWanted reports whether the previous version of the walked file
// e, whose index entry is ent (none: hasEnt false), may be reused unread:
// it is copied, or, in a run that references it, referenced with e's
// identity. relOf gives the file's source-relative path, built only when
// --copy needs it.
func (r *run) storedAsWanted(e diff.Entry, ent blockstore.IndexEntry, hasEnt bool, relOf func() string) bool {
	if ent.Ino == 0 {
		return hasEnt || !r.opts.NoCopy
	}
	if !r.opts.NoCopy || r.srcMoved || !r.refers(relOf(), e.Name) {
		return false
	}
	return ent.Dev == e.Dev && ent.Ino == e.Ino && ent.CTime == e.CTime
}

// srcMoved reports whether the ref's references were made under another
// SRC than src (a tree moved, synced again under the same --name): its
// files are then read again, wherever their index entries say they are.
func srcMoved(ref blockstore.Ref, src string) bool {
	cur, ok := ref.Current()
	return ok && cur.Source != "" && filepath.Clean(cur.Source) != filepath.Clean(src)
}

// nocopySource is the SRC a --nocopy run records with its root.
func (r *run) nocopySource() string {
	if !r.opts.NoCopy {
		return ""
	}
	src, err := filepath.Abs(r.opts.Src)
	if err != nil {
		return ""
	}
	return src
}
