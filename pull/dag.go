package pull

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/ipfs/boxo/files"
	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// kind is what a UnixFS root node is.
type kind uint8

const (
	kindFile kind = iota + 1
	kindDir
	kindSymlink
)

func (k kind) String() string {
	switch k {
	case kindFile:
		return "file"
	case kindDir:
		return "directory"
	}
	return "symlink"
}

// decodeEntry reads an entry's root block: its dag-pb node and UnixFS data
// (both nil for a raw block, which is a whole file) and its kind.
func decodeEntry(b blocks.Block) (*mdag.ProtoNode, *ft.FSNode, kind, error) {
	switch b.Cid().Prefix().Codec {
	case cid.Raw:
		return nil, nil, kindFile, nil
	case cid.DagProtobuf:
	default:
		return nil, nil, 0, fmt.Errorf("block %s: codec %#x is not UnixFS", b.Cid(), b.Cid().Prefix().Codec)
	}
	nd, err := mdag.DecodeProtobuf(b.RawData())
	if err != nil {
		return nil, nil, 0, fmt.Errorf("block %s: %w", b.Cid(), err)
	}
	fsn, err := ft.FSNodeFromBytes(nd.Data())
	if err != nil {
		return nil, nil, 0, fmt.Errorf("block %s: not UnixFS: %w", b.Cid(), err)
	}
	switch fsn.Type() {
	case ft.TFile, ft.TRaw:
		return nd, fsn, kindFile, nil
	case ft.TDirectory, ft.THAMTShard:
		return nd, fsn, kindDir, nil
	case ft.TSymlink:
		return nd, fsn, kindSymlink, nil
	}
	return nil, nil, 0, fmt.Errorf("block %s: UnixFS type %s cannot be written to disk", b.Cid(), fsn.Type())
}

// meta is the mode and mtime a node stores, in lstat's terms.
type meta struct {
	hasMode, hasMTime bool
	mode              uint32
	mtime             int64
}

func metaOf(fsn *ft.FSNode) meta {
	if fsn == nil {
		return meta{}
	}
	var m meta
	if mode := fsn.Mode(); mode != 0 || fsn.ExtendedMode() != 0 {
		m.hasMode, m.mode = true, unixPerms(mode)
	}
	if t := fsn.ModTime(); !t.IsZero() {
		m.hasMTime, m.mtime = true, nsOf(t)
	}
	return m
}

// unixPerms converts Go's mode bits to the permission, setuid, setgid and
// sticky bits of chmod(2).
func unixPerms(m os.FileMode) uint32 { return files.ModePermsToUnixPerms(m) & 0o7777 }

// block gets the block c: inline for an identity CID, from the cache of
// structure blocks, else from the source (bounded by p.fetches).
func (p *puller) block(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if b, ok, err := identity(c); ok {
		return b, err
	}
	if data, ok := p.st.block(c); ok {
		return blocks.NewBlockWithCid(data, c)
	}
	if data, ok := p.pre.take(c); ok {
		return blocks.NewBlockWithCid(data, c)
	}
	select {
	case p.fetches <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-p.fetches }()
	return p.src.Block(ctx, c)
}

// link is one entry of a directory.
type link struct {
	Name  string
	Cid   cid.Cid
	Tsize uint64
}

// list reads the entries of the directory node nd at rel (HAMT shards are
// walked with boxo's hamt over a DAG service that fetches what the cache
// lacks), checks every name and returns them sorted by name as bytes.
func (p *puller) list(ctx context.Context, c cid.Cid, nd *mdag.ProtoNode, fsn *ft.FSNode, rel string) ([]link, error) {
	var out []link
	if fsn.Type() == ft.THAMTShard {
		var err error
		if out, err = p.hamtLinks(ctx, c, nd, rel); err != nil {
			if errors.Is(err, errLimit) || ctx.Err() != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%s: HAMT: %w", p.dagPath(rel), err)
		}
	} else {
		for _, l := range nd.Links() {
			out = append(out, link{Name: l.Name, Cid: l.Cid, Tsize: l.Size})
		}
	}
	if err := p.addEntries(int64(len(out)), rel); err != nil {
		return nil, err
	}
	for _, l := range out {
		if err := checkName(l.Name); err != nil {
			return nil, fmt.Errorf("%s: entry %q: %w", p.dagPath(rel), l.Name, err)
		}
		if rel == "" && l.Name == StateDir {
			return nil, fmt.Errorf("%s: entry %q: pull keeps its state under that name in DEST", p.dagPath(rel), l.Name)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for i := 1; i < len(out); i++ {
		if out[i].Name == out[i-1].Name {
			return nil, fmt.Errorf("%s: entry %q appears twice", p.dagPath(rel), out[i].Name)
		}
	}
	return out, nil
}

// checkName accepts a link name only if it is one path component that can
// be created in a directory.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case name == "." || name == "..":
		return errors.New("not a file name")
	case strings.ContainsRune(name, '/'):
		return errors.New("name contains '/'")
	case strings.ContainsRune(name, 0):
		return errors.New("name contains NUL")
	case len(name) > 255:
		return errors.New("name longer than 255 bytes")
	}
	return nil
}

// newHAMT lists and queues the entries of a HAMT directory DEST does not
// have yet, one child shard at a time: the shard's whole subtree (its
// entries' blocks with it) comes in one CAR when it is small enough, and
// its entries are queued at once, so the memory held ahead stays bounded
// however big the directory. Names are checked as in list, duplicates
// across shards included.
func (p *puller) newHAMT(n *dirNode, pn *mdag.ProtoNode) (err error) {
	herr := func(err error) error {
		if errors.Is(err, errLimit) || p.ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("%s: HAMT: %w", p.dagPath(n.rel), err)
	}
	pad, err := shardPad(pn)
	if err != nil {
		return herr(err)
	}
	seen := map[string]bool{}
	n.pending.Store(1) // the listing's own hold, released last
	defer p.entryDone(n)
	queue := func(links []link) error {
		if err := p.addEntries(int64(len(links)), n.rel); err != nil {
			return err
		}
		ts := make([]task, 0, len(links))
		for _, l := range links {
			if err := checkName(l.Name); err != nil {
				return fmt.Errorf("%s: entry %q: %w", p.dagPath(n.rel), l.Name, err)
			}
			if seen[l.Name] {
				return fmt.Errorf("%s: entry %q appears twice", p.dagPath(n.rel), l.Name)
			}
			seen[l.Name] = true
			ts = append(ts, task{dir: n, name: l.Name, cid: l.Cid, size: l.Tsize})
		}
		n.pending.Add(int64(len(ts)))
		p.q.push(ts)
		return nil
	}
	var direct []link
	for _, l := range pn.Links() {
		switch {
		case len(l.Name) > pad:
			direct = append(direct, link{Name: l.Name[pad:], Cid: l.Cid, Tsize: l.Size})
		case len(l.Name) == pad:
			p.subtree(p.ctx, l.Cid, l.Size, time.Second)
			if err := p.addEntries(1, n.rel); err != nil {
				return err
			}
			child, err := p.shard(p.ctx, l.Cid)
			if err != nil {
				return herr(err)
			}
			links, err := p.hamtLinks(p.ctx, l.Cid, child, n.rel)
			if err != nil {
				return herr(err)
			}
			if err := queue(links); err != nil {
				return err
			}
		default:
			return herr(fmt.Errorf("invalid link name %q", l.Name))
		}
	}
	return queue(direct)
}
