package pull

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	unixfspb "github.com/ipfs/boxo/ipld/unixfs/pb"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"golang.org/x/sys/unix"
)

// maxFileDepth bounds the levels of one file's DAG. With 1 MiB chunks and
// 174 links per node (kubo's narrowest layout), 8 levels already address
// more than any disk holds; a deeper file is a hostile one.
const maxFileDepth = 32

// maxReuse is the largest chunk looked for in the old local version of a
// file: a leaf is at most one block.
const maxReuse = MaxBlockSize

// fileParallel is how many chunks of one file are fetched at once when
// they come block by block.
const fileParallel = 4

// file writes the file t whose root block is b (fsn nil for a raw block).
// known says the index vouches for what the local entry holds (another
// CID): then it is rewritten even if its size and mtime look right.
func (p *puller) file(t task, rel string, b blocks.Block, fsn *ft.FSNode, ls localStat, known bool, stream Stream) error {
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
	if !known && ls.Type == typeFile && m.hasMTime && ls.Size == size && ls.MTime == m.mtime && (!m.hasMode || ls.Mode == m.mode) {
		return p.record(d, t.name, rel, t.cid)
	}
	w := &fileWriter{p: p, rel: rel, old: -1, size: size, stream: stream, seen: map[cid.Cid]span{}}
	if ls.Type == typeFile && ls.Size > 0 {
		// The old version's chunks are reused where they still match.
		if fd, err := unix.Openat(d.fd, t.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
			if st, err := fstat(fd); err == nil && st.Type == typeFile {
				w.old, w.oldSize = fd, st.Size
				defer unix.Close(fd)
			} else {
				unix.Close(fd)
			}
		}
	}
	err := p.writeTemp(d, t.name, rel, m, func(fd int) error {
		w.fd = fd
		return w.node(b, 0, size, 0)
	})
	if err != nil {
		return err
	}
	p.filesWritten.Add(1)
	p.bytesWritten.Add(size)
	p.bytesReused.Add(w.reused.Load())
	return p.record(d, t.name, rel, t.cid)
}

// span is where a chunk already sits in the file being written.
type span struct{ off, n int64 }

// fileWriter writes one file's DAG into a temporary file. Nodes are
// checked as they come: each node's data plus its children's declared
// sizes must equal its own declared size, and each child must hold exactly
// the size its parent declares, so offsets are known before the data
// arrives and a lying DAG is refused rather than written.
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
}

func (w *fileWriter) errorf(format string, a ...any) error {
	return fmt.Errorf("%s: %s", w.p.dagPath(w.rel), fmt.Sprintf(format, a...))
}

// node writes block b, which must hold want bytes, at off.
func (w *fileWriter) node(b blocks.Block, off, want int64, depth int) error {
	if depth > maxFileDepth {
		return w.errorf("file DAG deeper than %d levels: %v", maxFileDepth, errLimit)
	}
	var data []byte
	var links []cid.Cid
	var sizes []uint64
	switch b.Cid().Prefix().Codec {
	case cid.Raw:
		data = b.RawData()
	case cid.DagProtobuf:
		nd, err := mdag.DecodeProtobuf(b.RawData())
		if err != nil {
			return w.errorf("block %s: %v", b.Cid(), err)
		}
		fsn, err := ft.FSNodeFromBytes(nd.Data())
		if err != nil {
			return w.errorf("block %s: not UnixFS: %v", b.Cid(), err)
		}
		if t := fsn.Type(); t != ft.TFile && t != ft.TRaw {
			return w.errorf("block %s: a %s inside a file", b.Cid(), t)
		}
		data, sizes = fsn.Data(), fsn.BlockSizes()
		if len(sizes) != len(nd.Links()) {
			return w.errorf("block %s: %d links but %d block sizes", b.Cid(), len(nd.Links()), len(sizes))
		}
		for _, l := range nd.Links() {
			links = append(links, l.Cid)
		}
		total := uint64(len(data))
		for _, s := range sizes {
			if s == 0 {
				return w.errorf("block %s: an empty chunk", b.Cid())
			}
			if total += s; total < s || total > math.MaxInt64 {
				return w.errorf("block %s: sizes overflow", b.Cid())
			}
		}
		if fsn.FileSize() != total {
			return w.errorf("block %s: declares %d bytes but holds %d", b.Cid(), fsn.FileSize(), total)
		}
	default:
		return w.errorf("block %s: codec %#x inside a file", b.Cid(), b.Cid().Prefix().Codec)
	}
	total := int64(len(data))
	for _, s := range sizes {
		total += int64(s)
	}
	if total != want {
		return w.errorf("block %s: holds %d bytes where %d are declared", b.Cid(), total, want)
	}
	if len(data) > 0 {
		if err := pwriteAll(w.fd, data, off); err != nil {
			return fmt.Errorf("DEST %s: %w", w.p.local(w.rel), err)
		}
	}
	coff := off + int64(len(data))
	offs := make([]int64, len(links))
	for i := range links {
		offs[i] = coff
		coff += int64(sizes[i])
	}
	var err error
	if w.stream != nil {
		for i, c := range links {
			if err = w.child(c, offs[i], int64(sizes[i]), depth+1); err != nil {
				break
			}
		}
	} else {
		err = w.children(links, offs, sizes, depth+1)
	}
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.seen[b.Cid()] = span{off, want}
	w.mu.Unlock()
	return nil
}

// children writes the children of a node fetched block by block, a few at
// once; each lands at its own offset.
func (w *fileWriter) children(links []cid.Cid, offs []int64, sizes []uint64, depth int) error {
	var wg sync.WaitGroup
	var first onceErr
	sem := make(chan struct{}, fileParallel)
	for i, c := range links {
		if first.get() != nil || w.p.ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := w.child(c, offs[i], int64(sizes[i]), depth); err != nil {
				first.set(err)
			}
		})
	}
	wg.Wait()
	if err := first.get(); err != nil {
		return err
	}
	return w.p.ctx.Err()
}

// child writes the chunk c of n bytes at off: copied from where this file
// already holds it, read from the old local version if it is there at the
// same offset, else fetched.
func (w *fileWriter) child(c cid.Cid, off, n int64, depth int) error {
	w.mu.Lock()
	s, ok := w.seen[c]
	w.mu.Unlock()
	if ok && s.n == n {
		if err := copyRange(w.fd, off, w.fd, s.off, n); err != nil {
			return fmt.Errorf("DEST %s: %w", w.p.local(w.rel), err)
		}
		return nil
	}
	hit, tried := w.reuse(c, off, n)
	if hit {
		return nil
	}
	b, err := w.get(c)
	if err != nil {
		return err
	}
	if leaf := isLeafBlock(b); leaf {
		w.sawLeaf(off, n)
		if tried {
			w.misses.Add(1)
		}
	}
	return w.node(b, off, n, depth)
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
	if preadFull(w.old, buf, off) != nil || !isLeaf(c, buf) {
		return false, true
	}
	w.misses.Store(0)
	w.sawLeaf(off, n)
	if pwriteAll(w.fd, buf, off) != nil {
		return false, true
	}
	w.reused.Add(n)
	w.mu.Lock()
	w.seen[c] = span{off, n}
	w.mu.Unlock()
	return true, true
}

// isLeaf reports whether data, as a file leaf, has the CID c: a raw block,
// or a dag-pb UnixFS node of type File (kubo's balanced layout) or Raw
// (trickle layout) holding data.
func isLeaf(c cid.Cid, data []byte) bool {
	pre := c.Prefix()
	if pre.Codec == cid.DagProtobuf && pre.MhType == mh.SHA2_256 {
		dm, err := mh.Decode(c.Hash())
		if err != nil {
			return false
		}
		for _, t := range []unixfspb.Data_DataType{ft.TFile, ft.TRaw} {
			if bytes.Equal(leafSHA256(t, data), dm.Digest) {
				return true
			}
		}
		return false
	}
	return isLeafEncoded(c, data)
}

// leafSHA256 hashes the dag-pb encoding of a UnixFS leaf of type t holding
// data, without building it: PBNode{Data: Data{Type, Data, filesize}} is
// a few bytes of header, the data, and the filesize, in that order (the
// fields' numbers'), exactly as boxo's importer (kubo's) writes leaves.
func leafSHA256(t unixfspb.Data_DataType, data []byte) []byte {
	n := uint64(len(data))
	head := binary.AppendUvarint([]byte{0x08, byte(t), 0x12}, n)
	tail := binary.AppendUvarint([]byte{0x18}, n)
	outer := binary.AppendUvarint([]byte{0x0a}, uint64(len(head)+len(data)+len(tail)))
	h := sha256.New()
	h.Write(outer)
	h.Write(head)
	h.Write(data)
	h.Write(tail)
	return h.Sum(nil)
}

// isLeafEncoded is isLeaf by building each candidate block: for any hash.
func isLeafEncoded(c cid.Cid, data []byte) bool {
	pre := c.Prefix()
	switch pre.Codec {
	case cid.Raw:
		got, err := pre.Sum(data)
		return err == nil && got.Equals(c)
	case cid.DagProtobuf:
		for _, t := range []unixfspb.Data_DataType{ft.TFile, ft.TRaw} {
			fsn := ft.NewFSNode(t)
			fsn.SetData(data)
			pb, err := fsn.GetBytes()
			if err != nil {
				return false
			}
			enc, err := mdag.NodeWithData(pb).EncodeProtobuf(false)
			if err != nil {
				return false
			}
			if got, err := pre.Sum(enc); err == nil && got.Equals(c) {
				return true
			}
		}
	}
	return false
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
			if dup {
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
func (p *puller) splice(d *dirNode, t task, ls localStat) blocks.Block {
	tl, ok := p.src.(tailer)
	size := int(t.size)
	if !ok || ls.Type != typeFile || size > MaxBlockSize || t.size <= uint64(ls.Size) || t.size-uint64(ls.Size) > maxTail || notProto(t.cid) {
		return nil
	}
	n := int(ls.Size)
	// The block is 0x0a len(U) U, U = 08 02 12 len(data) data rest.
	lenU := -1
	for v := 1; v <= 3; v++ {
		if u := size - 1 - v; u >= 0 && uvarintLen(uint64(u)) == v {
			lenU = u
		}
	}
	head := binary.AppendUvarint([]byte{0x08, 0x02, 0x12}, uint64(n))
	rest := lenU - len(head) - n
	if lenU < 0 || rest < 2 || rest > maxTail {
		return nil
	}
	fd, err := unix.Openat(d.fd, t.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	if st, err := fstat(fd); err != nil || st != ls {
		return nil
	}
	block := binary.AppendUvarint([]byte{0x0a}, uint64(lenU))
	block = append(block, head...)
	block = append(block, make([]byte, n)...)
	if preadFull(fd, block[len(block)-n:], 0) != nil {
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
