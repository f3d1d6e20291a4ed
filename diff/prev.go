package diff

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/hamt"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// ErrNotDir means a previous entry expected to be a directory is not one.
var ErrNotDir = errors.New("not a directory in the previous root")

// Link is a named entry of a directory in a previous root.
type Link struct {
	Name  string
	Cid   cid.Cid
	Tsize uint64
}

// PrevDir is one directory of a previous root: its own metadata and its
// entries sorted by name as bytes.
type PrevDir struct {
	Known   metadata.Known
	Entries []Link
	Sharded bool // a HAMT
	// Blocks are the directory's encoded blocks as Dir read them, its own
	// first; for a HAMT, the root shard and then every other shard.
	// DirFromBlocks leaves it nil: its caller has them.
	Blocks [][]byte
}

// ErrBadBlock means a block offered as a directory's does not hash to its
// CID.
var ErrBadBlock = errors.New("block does not match its CID")

// Tree reads a previous root out of a DAG service.
type Tree struct {
	DAG ipld.DAGService
}

// Dir lists the directory at c. HAMT shards are enumerated and sorted, so
// both forms compare the same way against a walked listing.
func (t Tree) Dir(ctx context.Context, c cid.Cid) (PrevDir, error) {
	nd, err := t.DAG.Get(ctx, c)
	if err != nil {
		return PrevDir{}, fmt.Errorf("previous root: %s: %w", c, err)
	}
	return t.dirOf(ctx, nd, true)
}

// DirFromBlocks is Dir for the directory at c whose blocks the caller
// holds (a cached copy, as in PrevDir.Blocks): the first must hash to c;
// each other one is used where a HAMT links to its hash, and shards not
// among them are read from the DAG.
func (t Tree) DirFromBlocks(ctx context.Context, c cid.Cid, raws [][]byte) (PrevDir, error) {
	if len(raws) == 0 {
		return PrevDir{}, fmt.Errorf("previous root: %s: %w", c, ErrBadBlock)
	}
	if sum, err := c.Prefix().Sum(raws[0]); err != nil || !sum.Equals(c) {
		return PrevDir{}, fmt.Errorf("previous root: %s: %w", c, ErrBadBlock)
	}
	if len(raws) == 1 {
		if d, ok := basicDir(raws[0]); ok {
			return d, nil
		}
	}
	b, err := blocks.NewBlockWithCid(bytes.Clone(raws[0]), c)
	if err != nil {
		return PrevDir{}, err
	}
	nd, err := mdag.DecodeProtobufBlock(b)
	if err != nil {
		return PrevDir{}, fmt.Errorf("previous root: %s: %w", c, err)
	}
	if len(raws) > 1 {
		// Shards are keyed by their own hash: one that is not what a link
		// names is never looked up.
		o := &overlay{DAGService: t.DAG, blocks: make(map[cid.Cid][]byte, len(raws)-1)}
		for _, raw := range raws[1:] {
			if sc, err := c.Prefix().Sum(raw); err == nil {
				o.blocks[sc] = bytes.Clone(raw)
			}
		}
		t.DAG = o
	}
	return t.dirOf(ctx, nd, false)
}

// dirOf lists the directory whose top block is nd; with keep, it also
// returns the blocks it read (PrevDir.Blocks).
func (t Tree) dirOf(ctx context.Context, nd ipld.Node, keep bool) (PrevDir, error) {
	c := nd.Cid()
	pn, ok := nd.(*mdag.ProtoNode)
	if !ok {
		k, err := metadata.FromNode(nd)
		if err != nil {
			return PrevDir{}, err
		}
		return PrevDir{Known: k}, ErrNotDir
	}
	// The UnixFS data is parsed once, for the metadata and the type.
	fsn, err := ft.FSNodeFromBytes(pn.Data())
	if err != nil {
		return PrevDir{}, fmt.Errorf("node %s: %w", c, err)
	}
	k, err := metadata.FromFSNode(fsn)
	if err != nil {
		return PrevDir{}, fmt.Errorf("node %s: %w", c, err)
	}
	if k.Type != metadata.Dir {
		return PrevDir{Known: k}, ErrNotDir
	}
	var links []*ipld.Link
	var blks [][]byte
	if keep {
		blks = [][]byte{nd.RawData()}
	}
	if fsn.Type() == ft.THAMTShard {
		dag := t.DAG
		var rec *recorder
		if keep {
			rec = &recorder{DAGService: dag}
			dag = rec
		}
		s, err := hamt.NewHamtFromDag(dag, nd)
		if err != nil {
			return PrevDir{}, fmt.Errorf("previous root: HAMT %s: %w", c, err)
		}
		if links, err = s.EnumLinks(ctx); err != nil {
			return PrevDir{}, fmt.Errorf("previous root: HAMT %s: %w", c, err)
		}
		if keep {
			blks = append(blks, rec.blocks...)
		}
	} else {
		links = pn.Links()
	}
	d := PrevDir{Known: k, Entries: make([]Link, len(links)), Sharded: fsn.Type() == ft.THAMTShard, Blocks: blks}
	for i, l := range links {
		d.Entries[i] = Link{Name: l.Name, Cid: l.Cid, Tsize: l.Size}
	}
	if dup, ok := sortByName(d.Entries); !ok {
		return PrevDir{}, fmt.Errorf("previous root: directory %s has %q twice", c, dup)
	}
	return d, nil
}

// sortByName sorts entries by name as bytes (canonical directories come
// sorted already) and reports a name found twice.
func sortByName(entries []Link) (dup string, ok bool) {
	less := func(i, j int) bool { return entries[i].Name < entries[j].Name }
	if !sort.SliceIsSorted(entries, less) {
		sort.Slice(entries, less)
	}
	for i := 1; i < len(entries); i++ {
		if entries[i].Name == entries[i-1].Name {
			return entries[i].Name, false
		}
	}
	return "", true
}

// Known reads what the previous root stores about the entry at c.
func (t Tree) Known(ctx context.Context, c cid.Cid) (metadata.Known, ipld.Node, error) {
	nd, err := t.DAG.Get(ctx, c)
	if err != nil {
		return metadata.Known{}, nil, fmt.Errorf("previous root: %s: %w", c, err)
	}
	k, err := metadata.FromNode(nd)
	return k, nd, err
}

// SymlinkTarget reads a symlink's target from its node.
func SymlinkTarget(nd ipld.Node) (string, error) {
	pn, ok := nd.(*mdag.ProtoNode)
	if !ok {
		return "", fmt.Errorf("%s is not a symlink", nd.Cid())
	}
	fsn, err := ft.FSNodeFromBytes(pn.Data())
	if err != nil {
		return "", err
	}
	return string(fsn.Data()), nil
}

// Merge walks two listings sorted by name in lock step, calling fn with
// an element of a alone (b's nil), of b alone (a's nil), or one of each
// when cmp, which compares their names, finds them equal.
func Merge[A, B any](a []A, b []B, cmp func(*A, *B) int, fn func(*A, *B)) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		c := 0
		switch {
		case j == len(b):
			c = -1
		case i == len(a):
			c = 1
		default:
			c = cmp(&a[i], &b[j])
		}
		switch {
		case c < 0:
			fn(&a[i], nil)
			i++
		case c > 0:
			fn(nil, &b[j])
			j++
		default:
			fn(&a[i], &b[j])
			i++
			j++
		}
	}
}

// Lookup finds the link at the slash-separated path rel under root, going
// down one directory (or HAMT) at a time. ok is false when some component
// is missing or not a directory.
func (t Tree) Lookup(ctx context.Context, root cid.Cid, rel string) (Link, bool) {
	l := Link{Cid: root}
	for _, name := range strings.Split(rel, "/") {
		d, err := t.Dir(ctx, l.Cid)
		if err != nil {
			return Link{}, false
		}
		i := sort.Search(len(d.Entries), func(i int) bool { return d.Entries[i].Name >= name })
		if i == len(d.Entries) || d.Entries[i].Name != name {
			return Link{}, false
		}
		l = d.Entries[i]
	}
	return l, true
}

// overlay serves the blocks it holds and reads the rest from the DAG
// under it.
type overlay struct {
	ipld.DAGService
	blocks map[cid.Cid][]byte
}

func (o *overlay) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	raw, ok := o.blocks[c]
	if !ok {
		return o.DAGService.Get(ctx, c)
	}
	b, err := blocks.NewBlockWithCid(raw, c)
	if err != nil {
		return nil, err
	}
	return mdag.DecodeProtobufBlock(b)
}

func (o *overlay) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	var rest []cid.Cid
	for _, c := range cs {
		if _, ok := o.blocks[c]; !ok {
			rest = append(rest, c)
			continue
		}
		nd, err := o.Get(ctx, c)
		out <- &ipld.NodeOption{Node: nd, Err: err}
	}
	if len(rest) == 0 {
		close(out)
		return out
	}
	go func() {
		defer close(out)
		for opt := range o.DAGService.GetMany(ctx, rest) {
			out <- opt
		}
	}()
	return out
}

// recorder keeps the encoded blocks read through it (a HAMT's shards, for
// PrevDir.Blocks).
type recorder struct {
	ipld.DAGService
	mu     sync.Mutex
	blocks [][]byte
}

func (r *recorder) keep(nd ipld.Node) {
	r.mu.Lock()
	r.blocks = append(r.blocks, nd.RawData())
	r.mu.Unlock()
}

func (r *recorder) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	nd, err := r.DAGService.Get(ctx, c)
	if err == nil {
		r.keep(nd)
	}
	return nd, err
}

func (r *recorder) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	go func() {
		defer close(out)
		for opt := range r.DAGService.GetMany(ctx, cs) {
			if opt.Err == nil {
				r.keep(opt.Node)
			}
			out <- opt
		}
	}()
	return out
}
