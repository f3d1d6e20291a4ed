package diff

import (
	"context"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// Change is one itemised difference.
type Change struct {
	Kind byte   // '+' added, '-' removed, '*' changed
	Path string // relative to the root, slash separated; directories end in '/'
	Why  metadata.Why
}

func (c Change) String() string {
	if c.Kind == '*' {
		return fmt.Sprintf("* %s (%s)", c.Path, c.Why)
	}
	return fmt.Sprintf("%c %s", c.Kind, c.Path)
}

// Roots reports, in walk order (depth first, names sorted as bytes), the
// entries that differ between two roots. Entries with equal CIDs are
// identical subtrees and are skipped unread, so the cost follows the size
// of the change, not of the tree.
func (t Tree) Roots(ctx context.Context, old, new cid.Cid, fn func(Change)) error {
	if old.Equals(new) {
		return nil
	}
	od, oerr := t.Dir(ctx, old)
	nd, nerr := t.Dir(ctx, new)
	if oerr != nil || nerr != nil {
		// Single files (or broken roots): compare the nodes themselves.
		ok, _, err := t.Known(ctx, old)
		if err != nil {
			return err
		}
		nk, _, err := t.Known(ctx, new)
		if err != nil {
			return err
		}
		fn(Change{Kind: '*', Path: ".", Why: why(ok, nk)})
		return nil
	}
	if w := why(od.Known, nd.Known) &^ metadata.WhyContent; w != 0 {
		fn(Change{Kind: '*', Path: "/", Why: w})
	}
	return t.dirs(ctx, "", od, nd, fn)
}

func (t Tree) dirs(ctx context.Context, path string, od, nd PrevDir, fn func(Change)) error {
	var err error
	Merge(nd.Entries, od.Entries, func(n, o *Link) int { return strings.Compare(n.Name, o.Name) }, func(n, o *Link) {
		if err != nil {
			return
		}
		if err = ctx.Err(); err != nil {
			return
		}
		var name string
		if n != nil {
			name = n.Name
		} else {
			name = o.Name
		}
		p := name
		if path != "" {
			p = path + "/" + name
		}
		switch {
		case n == nil:
			err = t.report(ctx, '-', p, o.Cid, fn)
		case o == nil:
			err = t.report(ctx, '+', p, n.Cid, fn)
		case !o.Cid.Equals(n.Cid):
			err = t.changed(ctx, p, o.Cid, n.Cid, fn)
		}
	})
	return err
}

func (t Tree) report(ctx context.Context, kind byte, p string, c cid.Cid, fn func(Change)) error {
	k, _, err := t.Known(ctx, c)
	if err != nil {
		return err
	}
	if k.Type == metadata.Dir {
		p += "/"
	}
	fn(Change{Kind: kind, Path: p})
	return nil
}

func (t Tree) changed(ctx context.Context, p string, old, new cid.Cid, fn func(Change)) error {
	ok, _, err := t.Known(ctx, old)
	if err != nil {
		return err
	}
	nk, _, err := t.Known(ctx, new)
	if err != nil {
		return err
	}
	if ok.Type == metadata.Dir && nk.Type == metadata.Dir {
		od, err := t.Dir(ctx, old)
		if err != nil {
			return err
		}
		nd, err := t.Dir(ctx, new)
		if err != nil {
			return err
		}
		if w := why(ok, nk) &^ metadata.WhyContent; w != 0 {
			fn(Change{Kind: '*', Path: p + "/", Why: w})
		}
		return t.dirs(ctx, p, od, nd, fn)
	}
	if ok.Type == metadata.Dir || nk.Type == metadata.Dir {
		p += "/"
	}
	fn(Change{Kind: '*', Path: p, Why: why(ok, nk)})
	return nil
}

// why compares two stored versions of an entry whose CIDs differ: what the
// metadata does not explain is content.
func why(o, n metadata.Known) metadata.Why {
	if o.Type != n.Type {
		return metadata.WhyType
	}
	var w metadata.Why
	if o.Type == metadata.File && o.Size != n.Size {
		w |= metadata.WhySize
	}
	if o.HasMTime != n.HasMTime || !o.MTime.Equal(n.MTime) {
		w |= metadata.WhyMTime
	}
	if o.HasMode != n.HasMode || o.Mode != n.Mode {
		w |= metadata.WhyMode
	}
	if w&(metadata.WhySize) == 0 && o.Type != metadata.Dir {
		// Same size: only the bytes tell whether the data changed too;
		// without reading them, say so when metadata alone does not
		// account for a different CID.
		if w == 0 {
			w = metadata.WhyContent
		}
	}
	return w
}
