package chunker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// BlockPutter is a DAG that also takes a block as its CID and encoded
// bytes. The bytes are only lent for the call: the importer reuses them.
type BlockPutter interface {
	PutBlock(ctx context.Context, c cid.Cid, data []byte) error
}

// Why our own balanced builder, when boxo's balanced.Layout makes the same
// DAG: boxo wraps every chunk in an FSNode and a ProtoNode, and marshalling
// those copies the chunk twice into fresh allocations (three times for a
// one-chunk file, whose root is re-encoded to carry mode and mtime), and its
// splitter allocates every chunk anew. On a publish cycle that is most of
// the CPU not spent hashing or in the kernel (docs/benchmarks.md). Here a
// chunk is read once into a buffer that has room around it for the UnixFS
// and dag-pb framing, hashed and written from there, and the buffer is
// reused. Only the leaves are ours: the few nodes above them are built with
// boxo's types. The shape is boxo's (fill each node up to the profile's
// width, left to right, and add a level when the data goes on), and the
// tests in balanced_test.go check CIDs against boxo's builder for every
// size class, width and metadata setting.

// Room kept before and after a chunk: the dag-pb Data tag and length, the
// UnixFS Type field and the Data tag and length before it (≤ 14 bytes);
// filesize, mode and mtime after it (≤ 42 bytes).
const (
	headroom = 16
	tailroom = 64
)

type link struct {
	cid   cid.Cid
	tsize uint64 // the DAG under the link, as its parent records it
	size  uint64 // file bytes under the link
}

type leafBuilder struct {
	ctx      context.Context
	im       *Importer
	put      BlockPutter
	r        io.Reader
	buf      []byte // headroom + chunk size + tailroom
	n        int    // bytes of the current chunk, at buf[headroom:]
	ahead    [1]byte
	hasAhead bool // ahead holds the first byte of the next chunk
	pending  bool // the buffer holds a chunk not yet stored
	last     bool // no data follows the chunk in the buffer
	leafPB   cid.Builder
	leafRaw  cid.Builder
	fields   metadata.Fields
	st       metadata.Stat
}

// fastLayout reports whether the fast builder makes this profile's DAGs:
// fixed-size chunks, balanced layout, and a DAG that takes raw blocks.
func (im *Importer) fastLayout() (BlockPutter, bool) {
	bp, ok := im.DAG.(BlockPutter)
	cs := im.Profile.ChunkSize()
	return bp, ok && !im.Profile.Trickle && cs > 0 && cs <= int64(maxChunk)
}

// maxChunk is boxo's block size limit (helpers.BlockSizeLimit, 2 MiB),
// fixed here: that variable is a process-wide global, and no global may
// change a CID.
const maxChunk = 2 << 20

// fastBalanced stores the file DAG of r's bytes as boxo's balanced builder
// would, each leaf written from one reused buffer, and returns its root and
// Tsize.
func (im *Importer) fastBalanced(ctx context.Context, bp BlockPutter, r io.Reader, st metadata.Stat) (cid.Cid, uint64, error) {
	size := int(im.Profile.ChunkSize())
	bufp, _ := im.bufs.Get().(*[]byte)
	if bufp == nil || len(*bufp) != headroom+size+tailroom {
		b := make([]byte, headroom+size+tailroom)
		bufp = &b
	}
	defer im.bufs.Put(bufp)
	cb := im.Profile.CidBuilder()
	b := &leafBuilder{
		ctx: ctx, im: im, put: bp, r: r, buf: *bufp,
		leafPB: cb.WithCodec(cid.DagProtobuf), leafRaw: cb.WithCodec(cid.Raw),
		fields: metadata.Fields{Mode: im.Profile.PreserveMode, MTime: im.Profile.PreserveMTime},
		st:     st,
	}
	if err := b.read(); err != nil {
		return cid.Undef, 0, err
	}
	if !b.pending {
		// An empty file is one small node either way; boxo's builder
		// encodes its absent Data field.
		nd, err := im.boxoLayout(eofReader{}, st)
		if err != nil {
			return cid.Undef, 0, err
		}
		return nd.Cid(), mustSize(nd), nil
	}
	only := b.last
	first, err := b.leaf(only)
	if err != nil || only {
		return first.cid, first.tsize, err
	}
	// As boxo's balanced.Layout: the tree so far becomes the first child of
	// a new root one level deeper, until the data ends.
	var top *inner
	cur := first
	for depth := 1; b.pending; depth++ {
		if top != nil {
			if cur, err = b.commit(top, false); err != nil {
				return cid.Undef, 0, err
			}
		}
		top = &inner{}
		top.add(cur)
		if err := b.fill(top, depth); err != nil {
			return cid.Undef, 0, err
		}
	}
	root, err := b.commit(top, true)
	return root.cid, root.tsize, err
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// read reads the next chunk into the buffer and finds out whether it is
// the last (as boxo's splitter: full chunks until a short or empty read).
func (b *leafBuilder) read() error {
	chunk := b.buf[headroom : len(b.buf)-tailroom]
	off := 0
	if b.hasAhead {
		chunk[0] = b.ahead[0]
		off, b.hasAhead = 1, false
	}
	n, err := io.ReadFull(b.r, chunk[off:])
	b.n = off + n
	b.pending = b.n > 0
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		b.last = true
		return nil
	case err != nil:
		return err
	}
	// A full chunk: the file may end exactly here.
	if _, err := io.ReadFull(b.r, b.ahead[:]); err != nil {
		if errors.Is(err, io.EOF) {
			b.last = true
			return nil
		}
		return err
	}
	b.hasAhead = true
	return nil
}

// leaf stores the chunk in the buffer as a leaf and reads the next one. A
// leaf that is the whole file is its root and carries the metadata.
func (b *leafBuilder) leaf(root bool) (link, error) {
	n := b.n
	var c cid.Cid
	var block []byte
	var err error
	if b.im.Profile.RawLeaves {
		// A raw root cannot carry metadata, as in boxo.
		block = b.buf[headroom : headroom+n]
		c, err = b.leafRaw.Sum(block)
	} else {
		block, err = b.frame(n, root)
		if err == nil {
			c, err = b.leafPB.Sum(block)
		}
	}
	if err != nil {
		return link{}, err
	}
	if err := b.put.PutBlock(b.ctx, c, block); err != nil {
		return link{}, err
	}
	l := link{cid: c, tsize: uint64(len(block)), size: uint64(n)}
	if b.last {
		b.pending = false
		return l, nil
	}
	return l, b.read()
}

// frame wraps the n-byte chunk in the buffer, in place, as a dag-pb node
// without links whose Data is a UnixFS File node holding the chunk: the
// bytes boxo's FSNode and ProtoNode marshal to. The UnixFS fields other
// than Data are marshalled by boxo and the chunk spliced in after Type,
// its place in field order.
func (b *leafBuilder) frame(n int, root bool) ([]byte, error) {
	fsn := ft.NewFSNode(ft.TFile)
	fsn.UpdateFilesize(int64(n))
	if root {
		b.setMeta(fsn)
	}
	rest, err := fsn.GetBytes()
	if err != nil {
		return nil, err
	}
	if len(rest) < 2 || rest[0] != 0x08 || rest[1] != byte(ft.TFile) || len(rest)-2 > tailroom {
		return nil, fmt.Errorf("unexpected UnixFS encoding % x", rest)
	}
	dataHdr := binary.AppendUvarint([]byte{rest[0], rest[1], 0x12}, uint64(n))
	unixfsLen := len(dataHdr) + n + len(rest) - 2
	hdr := append(binary.AppendUvarint([]byte{0x0a}, uint64(unixfsLen)), dataHdr...)
	start := headroom - len(hdr)
	copy(b.buf[start:], hdr)
	end := headroom + n + copy(b.buf[headroom+n:], rest[2:])
	return b.buf[start:end], nil
}

// setMeta gives a root node the file's mode and mtime as the profile
// stores them (boxo's SetFileAttributes).
func (b *leafBuilder) setMeta(fsn *ft.FSNode) {
	fsn.SetModTime(b.fields.MTimeOf(b.st))
	fsn.SetMode(b.fields.ModeOf(b.st))
}

// inner is a node above the leaves, filled before it is encoded.
type inner struct {
	links []link
}

func (in *inner) add(l link) { in.links = append(in.links, l) }

// fill adds children to in, each a leaf (depth 1) or a full subtree one
// level lower, until in has the profile's width or the data ends.
func (b *leafBuilder) fill(in *inner, depth int) error {
	for len(in.links) < b.im.Profile.FileDAGWidth && b.pending {
		if depth == 1 {
			l, err := b.leaf(false)
			if err != nil {
				return err
			}
			in.add(l)
			continue
		}
		child := &inner{}
		if err := b.fill(child, depth-1); err != nil {
			return err
		}
		l, err := b.commit(child, false)
		if err != nil {
			return err
		}
		in.add(l)
	}
	return nil
}

// commit encodes in as boxo's builder does (root: with the file's
// metadata) and stores it.
func (b *leafBuilder) commit(in *inner, root bool) (link, error) {
	fsn := ft.NewFSNode(ft.TFile)
	pn := new(mdag.ProtoNode)
	if err := pn.SetCidBuilder(b.im.Profile.CidBuilder()); err != nil {
		return link{}, err
	}
	for _, l := range in.links {
		fsn.AddBlockSize(l.size)
		if err := pn.AddRawLink("", &ipld.Link{Cid: l.cid, Size: l.tsize}); err != nil {
			return link{}, err
		}
	}
	if root {
		b.setMeta(fsn)
	}
	data, err := fsn.GetBytes()
	if err != nil {
		return link{}, err
	}
	pn.SetData(data)
	if err := b.im.DAG.Add(b.ctx, pn); err != nil {
		return link{}, err
	}
	return link{cid: pn.Cid(), tsize: mustSize(pn), size: fsn.FileSize()}, nil
}
