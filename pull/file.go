package pull

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	unixfspb "github.com/ipfs/boxo/ipld/unixfs/pb"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/dagpb"
	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// maxFileDepth bounds the levels of one file's DAG. With 1 MiB chunks and
// 174 links per node (kubo's narrowest layout), 8 levels already address
// more than any disk holds; a deeper file is a hostile one.
const maxFileDepth = 32

// maxReuse is the largest chunk looked for in the old local version of a
// file: a leaf is at most one block.
const maxReuse = MaxBlockSize

// fileParallel is how many chunks of one file are fetched at once when
// they come block by block: each worker holds one block (at most 2 MiB).
// A 32 MiB file of 64 KiB chunks all changed took the same time with 4
// as with 8 from a gateway on loopback; 8 leaves room for latency.
const fileParallel = 8

// file writes the file t whose root block is b (fsn nil for a raw block).
// known says the index vouches for what the local entry holds (another
// CID): then it is rewritten even if its size and mtime look right.
func (p *puller) file(t task, rel string, b blocks.Block, fsn *ft.FSNode, ls metadata.Stat, known bool, stream Stream) error {
	d := t.dir
	m := p.metaOf(fsn)
	size := int64(len(b.RawData()))
	if fsn != nil {
		if fsn.FileSize() > math.MaxInt64 {
			return fmt.Errorf("%s: file size %d: %w", p.dagPath(rel), fsn.FileSize(), errLimit)
		}
		size = int64(fsn.FileSize())
	}
	if err := p.addBytes(size, rel); err != nil {
		return err
	}
	p.files.Add(1)
	// rsync's quick check against what the root says of the file: DEST may
	// already hold it (written by another tool, or by a run whose state was
	// lost).
	if !known && ls.Type == metadata.File && m.hasMTime && ls.Size == size && ls.MTime.UnixNano() == m.mtime && (!m.hasMode || unixPerms(ls.Mode) == m.mode) {
		return p.record(d, t.name, rel, t.cid)
	}
	w := &fileWriter{p: p, rel: rel, old: -1, size: size, stream: stream, seen: map[cid.Cid]span{}}
	if ls.Type == metadata.File && ls.Size > 0 {
		// The old version's chunks are reused where they still match.
		if fd, err := fsat.Open(d.fd, t.name, unix.O_RDONLY|unix.O_NOFOLLOW, 0); err == nil {
			if st, err := fstat(fd); err == nil && st.Type == metadata.File {
				w.old, w.oldSize = fd, st.Size
				defer unix.Close(fd)
			} else {
				unix.Close(fd)
			}
		}
	}
	written, err := p.writeTemp(d, t.name, rel, m, ls.Type == metadata.None, func(fd int) error {
		w.fd = fd
		kids, err := w.visit(b, 0, size, 0)
		if err == nil {
			err = w.write(kids)
		}
		if err == nil && w.holes.Load() {
			// A hole at the end is not written: the size makes it.
			if err = unix.Ftruncate(fd, size); err != nil {
				err = fmt.Errorf("DEST %s: %w", p.local(rel), err)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	p.filesWritten.Add(1)
	p.bytesWritten.Add(size)
	p.bytesReused.Add(w.reused.Load())
	return p.st.put(record{Path: rel, Cid: t.cid, Local: written})
}

// span is where a chunk already sits in the file being written.
type span struct{ off, n int64 }

// maxSeen bounds the chunks a file remembers the place of (to copy a
// repeated one rather than fetch it again): a hostile file of one-byte
// chunks must not grow the map with its size.
const maxSeen = 1 << 16

// fileWriter writes one file's DAG into a temporary file. Nodes are
// checked as they come: each node's data plus its children's declared
// sizes must equal its own declared size, and each child must hold exactly
// the size its parent declares, so offsets are known before the data
// arrives and a lying DAG is refused rather than written.
//
// Memory is bounded whatever the DAG's shape: from the entity stream the
// DAG is written depth first, one node at a time; block by block, by
// fileParallel workers sharing one stack of nodes still to write, each
// holding one block at a time. Either way what waits is the links of the
// nodes on the way down (at most maxFileDepth nodes' worth), never a
// fan-out multiplied level after level.
type fileWriter struct {
	p       *puller
	rel     string
	fd      int
	old     int // the old local version, -1 if none
	oldSize int64
	size    int64  // of the file being written
	stream  Stream // the entity CAR, while it delivers what is expected

	mu     sync.Mutex
	seen   map[cid.Cid]span
	reused atomic.Int64
	// misses counts leaves not found in the old version since the last one
	// that was: after two, it is not looked in any more (a rewritten file
	// would cost a read and a hash per chunk for nothing). leafSize is the
	// largest leaf seen: anything bigger is an inner node, not looked for.
	misses   atomic.Int32
	leafSize atomic.Int64
	// holes: some range of the file was left unwritten (sparse.go).
	holes atomic.Bool
}

// nodeAt is a node of the file still to write: the block c, which holds n
// bytes at off, and the node above it (nil at the top).
type nodeAt struct {
	c      cid.Cid
	off, n int64
	depth  int
	up     *parentNode
}

// parentNode is a node whose children are being written block by block; once
// the last is, its span is complete (see) and so may be its parent's.
type parentNode struct {
	nodeAt
	pending atomic.Int64
}

func (w *fileWriter) errorf(format string, a ...any) error {
	return fmt.Errorf("%s: %s", w.p.dagPath(w.rel), fmt.Sprintf(format, a...))
}

// see notes that the n bytes at off hold the node c.
func (w *fileWriter) see(c cid.Cid, off, n int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.seen) < maxSeen {
		w.seen[c] = span{off, n}
	}
}

// visit checks block b, which must hold want bytes, writes its data at
// off, and returns its children, in order.
func (w *fileWriter) visit(b blocks.Block, off, want int64, depth int) ([]nodeAt, error) {
	if depth > maxFileDepth {
		return nil, w.errorf("file DAG deeper than %d levels: %v", maxFileDepth, errLimit)
	}
	var data []byte
	var links []cid.Cid
	var sizes []uint64
	switch b.Cid().Prefix().Codec {
	case cid.Raw:
		data = b.RawData()
	case cid.DagProtobuf:
		fn, err := decodeFileNode(b.RawData())
		if err != nil {
			return nil, w.errorf("block %s: %v", b.Cid(), err)
		}
		if fn.typ != ft.TFile && fn.typ != ft.TRaw {
			return nil, w.errorf("block %s: a %s inside a file", b.Cid(), fn.typ)
		}
		data, sizes, links = fn.data, fn.sizes, fn.links
		if len(sizes) != len(links) {
			return nil, w.errorf("block %s: %d links but %d block sizes", b.Cid(), len(links), len(sizes))
		}
		total := uint64(len(data))
		for _, s := range sizes {
			if s == 0 {
				return nil, w.errorf("block %s: an empty chunk", b.Cid())
			}
			if total += s; total < s || total > math.MaxInt64 {
				return nil, w.errorf("block %s: sizes overflow", b.Cid())
			}
		}
		if fn.filesize != total {
			return nil, w.errorf("block %s: declares %d bytes but holds %d", b.Cid(), fn.filesize, total)
		}
	default:
		return nil, w.errorf("block %s: codec %#x inside a file", b.Cid(), b.Cid().Prefix().Codec)
	}
	total := int64(len(data))
	for _, s := range sizes {
		total += int64(s)
	}
	if total != want {
		return nil, w.errorf("block %s: holds %d bytes where %d are declared", b.Cid(), total, want)
	}
	if err := w.writeData(data, off); err != nil {
		return nil, err
	}
	if len(links) == 0 && len(data) > 0 && isZero(data) {
		// The next leaf with this CID is neither fetched nor written.
		w.p.zero.learn(b.Cid(), int64(len(data)))
	}
	kids := make([]nodeAt, len(links))
	coff := off + int64(len(data))
	for i, l := range links {
		kids[i] = nodeAt{c: l, off: coff, n: int64(sizes[i]), depth: depth + 1}
		coff += int64(sizes[i])
	}
	return kids, nil
}

// writeData writes data at off, leaving its pages of zeros as holes.
func (w *fileWriter) writeData(data []byte, off int64) error {
	holes, err := pwriteSparse(w.fd, data, off)
	if holes {
		w.holes.Store(true)
	}
	if err != nil {
		return fmt.Errorf("DEST %s: %w", w.p.local(w.rel), err)
	}
	return nil
}

// fileNode is a dag-pb node of a file's DAG, as visit checks it.
type fileNode struct {
	typ      unixfspb.Data_DataType
	data     []byte // a subslice of the block
	sizes    []uint64
	links    []cid.Cid
	filesize uint64
}

// decodeFileNode reads a file's dag-pb node. dagpb's decoder reads the
// canonical nodes kubo writes without copying their data (a leaf's
// megabyte); any other node boxo's decoders read, as they would.
func decodeFileNode(raw []byte) (fileNode, error) {
	var fn fileNode
	pbData, err := dagpb.DecodeNode(raw, func(_ string, c cid.Cid, _ uint64) { fn.links = append(fn.links, c) })
	if err == nil {
		var u dagpb.UnixFS
		if u, err = dagpb.DecodeUnixFS(pbData); err == nil {
			fn.typ, fn.data, fn.sizes, fn.filesize = u.Type, u.Data, u.Blocksizes, u.Filesize
			return fn, nil
		}
	}
	nd, err := mdag.DecodeProtobuf(raw)
	if err != nil {
		return fileNode{}, err
	}
	fsn, err := ft.FSNodeFromBytes(nd.Data())
	if err != nil {
		return fileNode{}, fmt.Errorf("not UnixFS: %w", err)
	}
	fn = fileNode{typ: fsn.Type(), data: fsn.Data(), sizes: fsn.BlockSizes(), filesize: fsn.FileSize()}
	for _, l := range nd.Links() {
		fn.links = append(fn.links, l.Cid)
	}
	return fn, nil
}

// write writes the sibling nodes kids and everything under them: from the
// entity stream depth first, and once there is no stream (or it went
// wrong) block by block.
func (w *fileWriter) write(kids []nodeAt) error {
	for i, k := range kids {
		if w.stream == nil {
			return w.parallel(kids[i:])
		}
		b, err := w.take(k)
		if err != nil || b == nil {
			if err != nil {
				return err
			}
			continue
		}
		sub, err := w.visit(b, k.off, k.n, k.depth)
		if err != nil {
			return err
		}
		if err := w.write(sub); err != nil {
			return err
		}
		w.see(k.c, k.off, k.n)
	}
	return nil
}

// take gets the node k's block, or writes k without one and returns nil:
// copied from where this file already holds it, or read from the old
// local version if it is there at the same offset.
func (w *fileWriter) take(k nodeAt) (blocks.Block, error) {
	if w.p.zero.is(k.c, k.n) {
		w.holes.Store(true)
		return nil, nil
	}
	w.mu.Lock()
	s, ok := w.seen[k.c]
	w.mu.Unlock()
	if ok && s.n == k.n {
		if err := w.copySeen(s, k.off); err != nil {
			return nil, fmt.Errorf("DEST %s: %w", w.p.local(w.rel), err)
		}
		return nil, nil
	}
	hit, tried := w.reuse(k.c, k.off, k.n)
	if hit {
		return nil, nil
	}
	b, err := w.get(k.c)
	if err != nil {
		return nil, err
	}
	if isLeafBlock(b) {
		w.sawLeaf(k.off, k.n)
		if tried {
			w.misses.Add(1)
		}
	}
	return b, nil
}

// copySeen copies the span s of the file, written already, to off. A
// file with holes has the span's holes left as holes (a span of nothing
// else is not copied), and is first given its size: a span that ends in
// a hole may end past what was written so far.
func (w *fileWriter) copySeen(s span, off int64) error {
	if w.holes.Load() {
		data, err := unix.Seek(w.fd, s.off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) || (err == nil && data >= s.off+s.n) {
			return nil
		}
		if err := unix.Ftruncate(w.fd, w.size); err != nil {
			return err
		}
	}
	return fsat.CopyRange(w.fd, off, w.fd, s.off, s.n)
}

// parallel writes the nodes kids and everything under them block by
// block, on fileParallel workers taking nodes from one stack: depth first,
// so what waits on it is bounded by the depth, not the DAG's breadth.
func (w *fileWriter) parallel(kids []nodeAt) error {
	var (
		mu    sync.Mutex
		cond  = sync.NewCond(&mu)
		stack []nodeAt
		busy  int
		first error
	)
	push := func(ks []nodeAt) {
		for i := len(ks) - 1; i >= 0; i-- {
			stack = append(stack, ks[i])
		}
	}
	push(kids)
	work := func() {
		mu.Lock()
		defer mu.Unlock()
		for {
			for len(stack) == 0 && busy > 0 && first == nil {
				cond.Wait()
			}
			if len(stack) == 0 || first != nil {
				cond.Broadcast()
				return
			}
			k := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			busy++
			mu.Unlock()
			sub, err := w.one(k)
			mu.Lock()
			busy--
			if err == nil {
				err = w.p.ctx.Err()
			}
			if err != nil && first == nil {
				first = err
			}
			push(sub)
			cond.Broadcast()
		}
	}
	var wg sync.WaitGroup
	for range fileParallel {
		wg.Go(work)
	}
	wg.Wait()
	return first
}

// one writes the node k and returns its children, each linked to it so
// that the last one done completes it.
func (w *fileWriter) one(k nodeAt) ([]nodeAt, error) {
	b, err := w.take(k)
	if err != nil {
		return nil, err
	}
	var sub []nodeAt
	if b != nil {
		if sub, err = w.visit(b, k.off, k.n, k.depth); err != nil {
			return nil, err
		}
	}
	if len(sub) == 0 {
		w.done(k)
		return nil, nil
	}
	in := &parentNode{nodeAt: k}
	in.pending.Store(int64(len(sub)))
	for i := range sub {
		sub[i].up = in
	}
	return sub, nil
}

// done notes the node k written whole: it is seen, and its parent is done
// once all its children are.
func (w *fileWriter) done(k nodeAt) {
	w.see(k.c, k.off, k.n)
	if k.up != nil && k.up.pending.Add(-1) == 0 {
		w.done(k.up.nodeAt)
	}
}

// sawLeaf notes the size of the leaf at off: the largest is what a leaf
// can be. The file's last leaf is left out: it is usually short, and as
// the first leaf seen (children are fetched in parallel) it would make
// every full-size leaf look like an inner node.
func (w *fileWriter) sawLeaf(off, n int64) {
	if off+n == w.size {
		return
	}
	for {
		ls := w.leafSize.Load()
		if n <= ls || w.leafSize.CompareAndSwap(ls, n) {
			return
		}
	}
}

// isLeafBlock reports whether b is a file leaf (no links), cheaply.
func isLeafBlock(b blocks.Block) bool {
	if b.Cid().Prefix().Codec == cid.Raw {
		return true
	}
	nd, err := mdag.DecodeProtobuf(b.RawData())
	return err == nil && len(nd.Links()) == 0
}

// reuse looks for the chunk c at the same offset of the old local version
// (an appended or patched file keeps its unchanged chunks there) and, if
// the bytes there encode to c, writes them. The hash is checked: a local
// file is evidence, not proof.
func (w *fileWriter) reuse(c cid.Cid, off, n int64) (hit, tried bool) {
	if w.old < 0 || n > maxReuse || off+n > w.oldSize || w.misses.Load() >= 2 {
		return false, false
	}
	if ls := w.leafSize.Load(); ls > 0 && n > ls {
		return false, false // bigger than a leaf: an inner node
	}
	buf := make([]byte, n)
	if fsat.PreadFull(w.old, buf, off) != nil || !isLeaf(c, buf) {
		return false, true
	}
	w.misses.Store(0)
	w.sawLeaf(off, n)
	if w.writeData(buf, off) != nil {
		return false, true
	}
	w.reused.Add(n)
	w.mu.Lock()
	w.seen[c] = span{off, n}
	w.mu.Unlock()
	return true, true
}

// get takes the next block from the entity stream if it is c (skipping
// duplicates a gateway sent anyway); otherwise the stream is dropped and c
// is fetched on its own.
func (w *fileWriter) get(c cid.Cid) (blocks.Block, error) {
	for w.stream != nil {
		b, err := w.stream.Next()
		if err == nil && b.Cid().Equals(c) {
			return b, nil
		}
		if err == nil {
			w.mu.Lock()
			_, dup := w.seen[b.Cid()]
			w.mu.Unlock()
			// A zero chunk was left as a hole without its block.
			if dup || w.p.zero.has(b.Cid()) {
				continue
			}
		}
		w.stream.Close()
		w.stream = nil
	}
	b, err := w.p.block(w.p.ctx, c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", w.p.dagPath(w.rel), err)
	}
	return b, nil
}

// tailer is a source that can send the end of a raw block alone.
type tailer interface {
	Tail(ctx context.Context, c cid.Cid, size, n int) (data []byte, whole bool, err error)
}

// maxTail is the most a single-block file's root may hold beyond its data
// (filesize, mode, mtime and the framing) for splice to try.
const maxTail = 64

// splice rebuilds the single-block file c from the file DEST holds (whose
// record says it is another CID) and the end of c's block, fetched alone:
// when only a file's mode or mtime changed, its block differs only after
// the data. A UnixFS file leaf is dag-pb PBNode{Data: Data{Type: File,
// Data, filesize, mode, mtime}}, fields in that order; the data is the old
// file, the rest is the tail. The result is used only if it hashes to c;
// otherwise (nil) the block is fetched whole.
func (p *puller) splice(d *dirNode, t task, ls metadata.Stat) blocks.Block {
	tl, ok := p.src.(tailer)
	size := int(t.size)
	if !ok || ls.Type != metadata.File || size > MaxBlockSize || t.size <= uint64(ls.Size) || t.size-uint64(ls.Size) > maxTail || notProto(t.cid) {
		return nil
	}
	n := int(ls.Size)
	// The block is a File leaf: dagpb's leaf head, the data, the rest.
	rest, ok := dagpb.LeafTailLen(size, ft.TFile, n)
	if !ok || rest < 2 || rest > maxTail {
		return nil
	}
	fd, err := fsat.Open(d.fd, t.name, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	if st, err := fstat(fd); err != nil || !sameLocal(ls, st) {
		return nil
	}
	block := dagpb.AppendLeafHead(make([]byte, 0, size), ft.TFile, n, rest)
	block = append(block, make([]byte, n)...)
	if fsat.PreadFull(fd, block[len(block)-n:], 0) != nil {
		return nil
	}
	tail, whole, err := tl.Tail(p.ctx, t.cid, size, rest)
	if err != nil {
		return nil
	}
	if whole {
		block = tail
	} else {
		block = append(block, tail...)
	}
	b, err := verify(t.cid, block)
	if err != nil {
		return nil
	}
	return b
}

// notProto reports a CID whose block is not dag-pb: nothing to splice.
func notProto(c cid.Cid) bool { return c.Prefix().Codec != cid.DagProtobuf }
