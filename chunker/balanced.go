package chunker

import (
	"context"
	"errors"
	"fmt"
	"io"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/ipfs-sync/ipfs-sync/internal/dagpb"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// BlockPutter is a DAG that also takes a block as its CID and encoded
// bytes. The bytes are only lent for the call: the importer reuses them.
type BlockPutter interface {
	PutBlock(ctx context.Context, c cid.Cid, data []byte) error
}

// BlockReserver is a BlockPutter that can lend the place a block of size
// bytes (with a multihash of mhLen bytes) will be stored in, for the
// block to be built there: a leaf is read from its file straight into
// the store's write buffer, not read into the importer's and copied. A
// nil Reservation: no place is lent (then the block is put as usual).
type BlockReserver interface {
	BlockPutter
	ReserveBlock(ctx context.Context, size, mhLen int) (Reservation, error)
}

// Reservation is a place a BlockReserver lends for one block.
type Reservation interface {
	// Bytes is the place: size bytes, for the block to be built in.
	Bytes() []byte
	// Commit stores the block built there under c, or with cid.Undef
	// gives the place back; it reports whether the block was new and
	// stored there (a block the store has leaves its place unused). The
	// importer calls it once, and the bytes are not its own after.
	Commit(c cid.Cid) (bool, error)
}

// Why our own balanced builder, when boxo's balanced.Layout makes the same
// DAG: boxo wraps every chunk in an FSNode and a ProtoNode, and marshalling
// those copies the chunk twice into fresh allocations (three times for a
// one-chunk file, whose root is re-encoded to carry mode and mtime), and its
// splitter allocates every chunk anew. On a publish cycle that is most of
// the CPU not spent hashing or in the kernel (docs/benchmarks.md#decisions). Here a
// chunk is read once, into the place the store lends for the leaf
// (BlockReserver) or into a reused buffer with room around it, framed
// there as the UnixFS/dag-pb leaf, hashed and stored. Only the leaves are
// ours: the few nodes above them are built with
// boxo's types. The shape is boxo's (fill each node up to the profile's
// width, left to right, and add a level when the data goes on), and the
// tests in balanced_test.go check CIDs against boxo's builder for every
// size class, width and metadata setting.

// Room kept before and after a chunk: the dag-pb Data tag and length, the
// UnixFS Type field and the Data tag and length before it (≤ 14 bytes);
// filesize, mode and mtime after it (≤ 42 bytes). The chunk starts 64
// bytes into the (page-aligned) buffer: the kernel copies a read from the
// page cache at half the speed when the destination lies a few bytes past
// a 4 KiB boundary (the copy's loads alias its recent stores), as a
// 16-byte headroom put it.
const (
	headroom = 64
	tailroom = 64
)

type link struct {
	cid   cid.Cid
	tsize uint64 // the DAG under the link, as its parent records it
	size  uint64 // file bytes under the link
}

type leafBuilder struct {
	ctx     context.Context
	im      *Importer
	put     BlockPutter
	res     BlockReserver // nil: leaves are built in buf and put
	ref     LeafReferrer  // non-nil: leaves are stored as references to src
	src     Source
	mhLen   int   // of the profile's multihash, for res
	chunk   int64 // the profile's chunk size
	r       io.Reader
	buf     []byte // headroom + chunk size + tailroom
	off     int64  // file bytes stored so far
	n       int    // bytes of the next chunk
	pending bool   // a chunk is left to store
	last    bool   // it is the file's last
	leafPB  *leafSum
	leafRaw *leafSum
	fields  metadata.Fields
	st      metadata.Stat
	// A leaf's framing, built here (frame) and copied around its chunk.
	hdr  [headroom]byte
	tail [tailroom]byte
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
// would, each leaf built in the place the store lends for it or in one
// reused buffer, and returns its root and Tsize.
func (im *Importer) fastBalanced(ctx context.Context, bp BlockPutter, r io.Reader, st metadata.Stat, src Source) (cid.Cid, uint64, error) {
	size := int(im.Profile.ChunkSize())
	b, _ := im.builders.Get().(*leafBuilder)
	if b == nil || len(b.buf) != headroom+size+tailroom {
		cb := im.Profile.CidBuilder()
		b = &leafBuilder{
			buf:    make([]byte, headroom+size+tailroom),
			leafPB: newLeafSum(cb, cid.DagProtobuf), leafRaw: newLeafSum(cb, cid.Raw),
		}
	}
	defer func() {
		// Nothing of this file stays reachable from the pool.
		*b = leafBuilder{buf: b.buf, leafPB: b.leafPB, leafRaw: b.leafRaw}
		im.builders.Put(b)
	}()
	*b = leafBuilder{
		ctx: ctx, im: im, put: bp, r: r, buf: b.buf,
		leafPB: b.leafPB, leafRaw: b.leafRaw,
		fields: metadata.Fields{Mode: im.Profile.PreserveMode, MTime: im.Profile.PreserveMTime},
		st:     st, chunk: int64(size),
	}
	if res, ok := bp.(BlockReserver); ok && im.multihashLen() > 0 {
		b.res, b.mhLen = res, im.multihashLen()
	}
	if ref, ok := bp.(LeafReferrer); ok && src.NoCopy {
		b.ref, b.src, b.res = ref, src, nil
	}
	b.next()
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

// next finds the size of the next chunk from the file's size: as boxo's
// splitter cuts it, full chunks and then what is left (nothing after a
// last full one). A file that changes while it is read shows in a short
// read or in its stat after reading: ErrChanged either way.
func (b *leafBuilder) next() {
	left := b.st.Size - b.off
	b.n = int(min(left, b.chunk))
	b.pending = b.n > 0
	b.last = left <= b.chunk
}

// leaf reads the next chunk and stores it as a leaf. A leaf that is the
// whole file is its root and carries the metadata. The leaf is built in
// the place the store lends for it when it does, else in the buffer.
func (b *leafBuilder) leaf(root bool) (link, error) {
	n := b.n
	var hdr, tail []byte
	if !b.im.Profile.RawLeaves {
		// A raw root cannot carry metadata, as in boxo.
		var err error
		if hdr, tail, err = b.frame(n, root); err != nil {
			return link{}, err
		}
	}
	size := len(hdr) + n + len(tail)
	block := b.buf[headroom-len(hdr) : headroom+n+len(tail)]
	if b.ref != nil && n >= MinRefLen && size > b.im.Profile.InlineLimit {
		return b.refLeaf(block, hdr, n, tail)
	}
	var lent Reservation
	if b.res != nil && size > b.im.Profile.InlineLimit {
		var err error
		if lent, err = b.res.ReserveBlock(b.ctx, size, b.mhLen); err != nil {
			return link{}, err
		}
		if lent != nil {
			block = lent.Bytes()
		}
	}
	c, err := b.build(block, hdr, n, tail)
	if lent != nil {
		if err != nil {
			lent.Commit(cid.Undef)
			return link{}, err
		}
		var stored bool
		if stored, err = lent.Commit(c); err == nil && !stored {
			// The store had this leaf: the rest of the file is likely
			// stored too (a copy, an append), and each such leaf would
			// leave its place unused until a gc.
			b.res = nil
		}
	} else if err == nil {
		err = b.put.PutBlock(b.ctx, c, block)
	}
	if err != nil {
		return link{}, err
	}
	b.off += int64(n)
	l := link{cid: c, tsize: uint64(size), size: uint64(n)}
	b.next()
	return l, nil
}

// refLeaf is leaf for a leaf stored as a reference to its file's bytes:
// built and hashed in the buffer, then handed to the store with where its
// bytes are.
func (b *leafBuilder) refLeaf(block, hdr []byte, n int, tail []byte) (link, error) {
	c, err := b.build(block, hdr, n, tail)
	if err != nil {
		return link{}, err
	}
	at := LeafAt{
		Path: b.src.Path, Dev: b.src.Dev, Ino: b.src.Ino, Size: b.st.Size, MTime: b.st.MTime, CTime: b.src.CTime,
		Off: b.off, Len: n, Head: hdr, Tail: tail,
	}
	if err := b.ref.PutLeafRef(b.ctx, c, block, at); err != nil {
		return link{}, err
	}
	b.off += int64(n)
	l := link{cid: c, tsize: uint64(len(block)), size: uint64(n)}
	b.next()
	return l, nil
}

// build reads the chunk into block between the framing and returns the
// leaf's CID.
func (b *leafBuilder) build(block, hdr []byte, n int, tail []byte) (cid.Cid, error) {
	copy(block, hdr)
	if _, err := io.ReadFull(b.r, block[len(hdr):len(hdr)+n]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return cid.Undef, ErrChanged // shorter than its stat said
		}
		return cid.Undef, err
	}
	copy(block[len(hdr)+n:], tail)
	if b.im.Profile.RawLeaves {
		return b.leafRaw.Sum(block)
	}
	return b.leafPB.Sum(block)
}

// frame is what goes before and after an n-byte chunk to make it a
// dag-pb node without links whose Data is a UnixFS File node holding the
// chunk: the bytes boxo's FSNode and ProtoNode marshal to, encoded by
// dagpb into the builder's own buffers.
func (b *leafBuilder) frame(n int, root bool) (hdr, tail []byte, err error) {
	u := dagpb.UnixFS{Type: ft.TFile, Filesize: uint64(n), Has: dagpb.HasFilesize}
	if root {
		// As setMeta: dagpb's UnixFS sets them as boxo's FSNode does.
		u.SetModTime(b.fields.MTimeOf(b.st))
		u.SetMode(b.fields.ModeOf(b.st))
	}
	tail = dagpb.AppendLeafTail(b.tail[:0], &u)
	hdr = dagpb.AppendLeafHead(b.hdr[:0], ft.TFile, n, len(tail))
	if len(hdr) > headroom || len(tail) > tailroom {
		return nil, nil, fmt.Errorf("unexpected leaf framing % x, % x", hdr, tail)
	}
	return hdr, tail, nil
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
