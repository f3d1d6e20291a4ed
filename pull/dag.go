package pull

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/boxo/files"
	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/hamt"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
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
func (p *puller) list(ctx context.Context, nd *mdag.ProtoNode, fsn *ft.FSNode, rel string) ([]link, error) {
	var links []*ipld.Link
	if fsn.Type() == ft.THAMTShard {
		s, err := hamt.NewHamtFromDag(&dagAdapter{p: p, rel: rel}, nd)
		if err != nil {
			return nil, fmt.Errorf("%s: HAMT: %w", p.dagPath(rel), err)
		}
		if links, err = s.EnumLinks(ctx); err != nil {
			if errors.Is(err, errLimit) || ctx.Err() != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%s: HAMT: %w", p.dagPath(rel), err)
		}
	} else {
		links = nd.Links()
	}
	if err := p.addEntries(int64(len(links)), rel); err != nil {
		return nil, err
	}
	out := make([]link, len(links))
	for i, l := range links {
		out[i] = link{Name: l.Name, Cid: l.Cid, Tsize: l.Size}
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

// dagAdapter is the read-only DAG service boxo's hamt walks: shards come
// from the cache (unchanged shards of the previous root cost nothing) or
// the source, and each one fetched is cached for the next run. Every shard
// counts as an entry, so a hostile HAMT cannot grow without bound.
type dagAdapter struct {
	p   *puller
	rel string
}

var errReadOnly = errors.New("read-only DAG service")

func (a *dagAdapter) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	if err := a.p.addEntries(1, a.rel); err != nil {
		return nil, err
	}
	b, err := a.p.block(ctx, c)
	if err != nil {
		return nil, err
	}
	if c.Prefix().Codec != cid.DagProtobuf {
		return nil, fmt.Errorf("HAMT shard %s is not dag-pb", c)
	}
	nd, err := mdag.DecodeProtobuf(b.RawData())
	if err != nil {
		return nil, fmt.Errorf("HAMT shard %s: %w", c, err)
	}
	if err := a.p.st.cacheBlock(c, b.RawData()); err != nil {
		return nil, err
	}
	nd.SetCidBuilder(c.Prefix())
	return nd, nil
}

func (a *dagAdapter) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, c := range cs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			nd, err := a.Get(ctx, c)
			out <- &ipld.NodeOption{Node: nd, Err: err}
		})
	}
	go func() { wg.Wait(); close(out) }()
	return out
}

func (a *dagAdapter) Add(context.Context, ipld.Node) error        { return errReadOnly }
func (a *dagAdapter) AddMany(context.Context, []ipld.Node) error  { return errReadOnly }
func (a *dagAdapter) Remove(context.Context, cid.Cid) error       { return errReadOnly }
func (a *dagAdapter) RemoveMany(context.Context, []cid.Cid) error { return errReadOnly }

// newHAMT lists and queues the entries of a HAMT directory DEST does not
// have yet, one child shard at a time: the shard's whole subtree (its
// entries' blocks with it) comes in one CAR when it is small enough, and
// its entries are queued at once, so the memory held ahead stays bounded
// however big the directory. Names are checked as in list, duplicates
// across shards included.
func (p *puller) newHAMT(n *dirNode, pn *mdag.ProtoNode) (err error) {
	a := &dagAdapter{p: p, rel: n.rel}
	herr := func(err error) error {
		if errors.Is(err, errLimit) || p.ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("%s: HAMT: %w", p.dagPath(n.rel), err)
	}
	if _, err := hamt.NewHamtFromDag(a, pn); err != nil { // checks the header
		return herr(err)
	}
	fsn, err := ft.FSNodeFromBytes(pn.Data())
	if err != nil {
		return herr(err)
	}
	padlen := len(fmt.Sprintf("%X", fsn.Fanout()-1))
	seen := map[string]bool{}
	n.pending.Store(1) // the listing's own hold, released last
	defer p.entryDone(n)
	queue := func(links []*ipld.Link) error {
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
			ts = append(ts, task{dir: n, name: l.Name, cid: l.Cid, size: l.Size})
		}
		n.pending.Add(int64(len(ts)))
		p.q.push(ts)
		return nil
	}
	var direct []*ipld.Link
	for _, l := range pn.Links() {
		switch {
		case len(l.Name) > padlen:
			direct = append(direct, &ipld.Link{Name: l.Name[padlen:], Cid: l.Cid, Size: l.Size})
		case len(l.Name) == padlen:
			p.subtree(p.ctx, l.Cid, l.Size, time.Second)
			child, err := a.Get(p.ctx, l.Cid)
			if err != nil {
				return herr(err)
			}
			s, err := hamt.NewHamtFromDag(a, child)
			if err != nil {
				return herr(err)
			}
			links, err := s.EnumLinks(p.ctx)
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
