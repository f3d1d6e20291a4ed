package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	pb "github.com/ipfs/boxo/ipld/unixfs/pb"
	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/internal/dagpb"
)

// BlockReader reads a block into a caller's buffer (a new one when it
// has too little room), checked as the store checks every read (by the
// sum written with it): blockstore.Store.ReadBlock. A Blockstore that is
// also a BlockReader (the store's) has its UnixFS files served through
// fileReader instead of boxo's UnixFS reader.
type BlockReader interface {
	ReadBlock(ctx context.Context, c cid.Cid, buf []byte) ([]byte, error)
}

// fileReader reads a UnixFS file (a dag-pb File or Raw node and the
// blocks under it, or a raw block) through a BlockReader: each leaf read
// into one buffer the reader reuses, checked by the store, its data
// region handed out as it is. boxo's UnixFS reader asks the blockservice
// for each leaf (a Block and a decoded ProtoNode and FSNode per leaf, and
// a copy of its data). It seeks by the Blocksizes of the nodes above, so
// a Range request reads only the leaves it covers.
type fileReader struct {
	ctx  context.Context
	rd   BlockReader
	root cid.Cid
	size int64
	pos  int64 // offset of the next byte Read returns

	stack []*level // the nodes from the root down to the leaf being read
	left  []byte   // what Read has not yet returned of the current leaf
	buf   *[]byte  // the leaf's block, from leafBufs
	// rootRaw is the root's block as openFile read it, in buf, until a
	// read of another block reuses buf: most files are one block.
	rootRaw []byte
}

// level is a node with children being read: its own data (which comes
// before them), their CIDs and sizes, and the next one to read.
type level struct {
	links []cid.Cid
	sizes []uint64
	next  int
}

// leafBufs hold leaves: up to a chunk of 1 MiB plus its dag-pb framing.
var leafBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20+1024); return &b }}

// maxDepth bounds a file DAG's depth: a balanced DAG of 174 links per node
// is 5 deep at 1 PiB of 1 MiB leaves; trickle DAGs grow deeper.
const maxDepth = 64

// errNotFile means the node is not a UnixFS file this reader serves (a
// directory, a symlink, or a node boxo reads its own way): the caller
// leaves the request to boxo.
var errNotFile = errors.New("not a UnixFS file")

// openFile opens the file whose root block is raw (read from c into buf,
// a buffer of leafBufs the reader then owns, if it opens). A node whose
// bytes under it do not add up to its Filesize is not served here.
func openFile(ctx context.Context, rd BlockReader, c cid.Cid, raw []byte, buf *[]byte) (*fileReader, dagpb.UnixFS, error) {
	f := &fileReader{ctx: ctx, rd: rd, root: c, buf: buf, rootRaw: raw}
	if c.Prefix().Codec == cid.Raw {
		f.size = int64(len(raw))
		return f, dagpb.UnixFS{}, nil
	}
	if c.Prefix().Codec != cid.DagProtobuf {
		return nil, dagpb.UnixFS{}, errNotFile
	}
	u, lv, err := decodeFileNode(raw)
	if err != nil {
		return nil, u, errNotFile
	}
	if u.Has&dagpb.HasFilesize == 0 || u.Filesize != nodeSize(u, lv) || u.Filesize > 1<<62 {
		return nil, u, errNotFile
	}
	f.size = int64(u.Filesize)
	return f, u, nil
}

// decodeFileNode reads a dag-pb UnixFS File or Raw node: its UnixFS
// message and, when it has children, a level for them.
func decodeFileNode(raw []byte) (dagpb.UnixFS, *level, error) {
	var lv *level
	data, err := dagpb.DecodeNode(raw, func(_ string, c cid.Cid, _ uint64) {
		if lv == nil {
			lv = &level{}
		}
		lv.links = append(lv.links, c)
	})
	if err != nil {
		return dagpb.UnixFS{}, nil, err
	}
	u, err := dagpb.DecodeUnixFS(data)
	if err != nil {
		return u, nil, err
	}
	if u.Type != pb.Data_File && u.Type != pb.Data_Raw {
		return u, nil, errNotFile
	}
	if lv != nil {
		if len(u.Blocksizes) != len(lv.links) {
			return u, nil, fmt.Errorf("%d links and %d block sizes", len(lv.links), len(u.Blocksizes))
		}
		lv.sizes = u.Blocksizes
	}
	return u, lv, nil
}

// nodeSize is the bytes of file a node holds: its own and its children's.
func nodeSize(u dagpb.UnixFS, lv *level) uint64 {
	n := uint64(len(u.Data))
	if lv != nil {
		for _, s := range lv.sizes {
			n += s
		}
	}
	return n
}

func (f *fileReader) Read(p []byte) (int, error) {
	for len(f.left) == 0 {
		if f.pos >= f.size {
			return 0, io.EOF
		}
		if err := f.descend(f.pos); err != nil {
			return 0, err
		}
	}
	n := copy(p, f.left)
	f.left = f.left[n:]
	f.pos += int64(n)
	return n, nil
}

// next returns the file's next bytes, all that are left of the current
// leaf, as they are in the reader's buffer: they hold until the next call.
// At the end it returns io.EOF.
func (f *fileReader) next() ([]byte, error) {
	for len(f.left) == 0 {
		if f.pos >= f.size {
			return nil, io.EOF
		}
		if err := f.descend(f.pos); err != nil {
			return nil, err
		}
	}
	p := f.left
	f.left = nil
	f.pos += int64(len(p))
	return p, nil
}

// descend finds the leaf holding the byte at off, from the lowest node of
// the stack that holds it (the root, after a Seek), and makes it current.
func (f *fileReader) descend(off int64) error {
	if len(f.stack) == 0 {
		return f.load(f.root, off, uint64(f.size))
	}
	// The bytes left of the nodes on the stack follow one another: the
	// byte at off is in the first one with children left.
	for len(f.stack) > 0 {
		lv := f.stack[len(f.stack)-1]
		if lv.next < len(lv.links) {
			i := lv.next
			lv.next++
			return f.load(lv.links[i], 0, lv.sizes[i])
		}
		f.stack = f.stack[:len(f.stack)-1]
	}
	return fmt.Errorf("file %s: its blocks end at byte %d of %d: %w", f.root, off, f.size, io.ErrUnexpectedEOF)
}

// load reads the node c, which its parent says holds size bytes of the
// file, and descends to the byte off (relative to the node) in it.
func (f *fileReader) load(c cid.Cid, off int64, size uint64) error {
	for {
		if len(f.stack) > maxDepth {
			return fmt.Errorf("file %s: deeper than %d levels", f.root, maxDepth)
		}
		if f.buf == nil {
			f.buf = leafBufs.Get().(*[]byte)
		}
		raw := f.rootRaw
		if f.rootRaw = nil; raw == nil || c != f.root {
			var err error
			if raw, err = f.rd.ReadBlock(f.ctx, c, (*f.buf)[:0]); err != nil {
				return fmt.Errorf("file %s: %w", f.root, err)
			}
			if cap(raw) > cap(*f.buf) {
				*f.buf = raw[:0]
			}
		}
		data, lv, err := f.node(c, raw)
		if err != nil {
			return fmt.Errorf("file %s: block %s: %w", f.root, c, err)
		}
		have := uint64(len(data))
		if lv != nil {
			have = nodeSize(dagpb.UnixFS{Data: data}, lv)
		}
		if have != size {
			return fmt.Errorf("file %s: block %s holds %d bytes, its parent says %d", f.root, c, have, size)
		}
		if off < int64(len(data)) || lv == nil {
			f.left = data[min(off, int64(len(data))):] // empty: a leaf of no bytes
			if lv != nil {
				f.stack = append(f.stack, lv)
			}
			return nil
		}
		off -= int64(len(data))
		i := 0
		for ; i < len(lv.sizes) && off >= int64(lv.sizes[i]); i++ {
			off -= int64(lv.sizes[i])
		}
		if i == len(lv.sizes) {
			return fmt.Errorf("file %s: block %s ends before byte %d", f.root, c, off)
		}
		lv.next = i + 1
		f.stack = append(f.stack, lv)
		c, size = lv.links[i], lv.sizes[i]
	}
}

// node decodes a block of the file: its own data (for a node with
// children, held in a copy: the buffer is the next block's) and, if it
// has children, a level for them.
func (f *fileReader) node(c cid.Cid, raw []byte) ([]byte, *level, error) {
	switch c.Prefix().Codec {
	case cid.Raw:
		return raw, nil, nil
	case cid.DagProtobuf:
		u, lv, err := decodeFileNode(raw)
		if err != nil {
			return nil, nil, err
		}
		if lv != nil && len(u.Data) > 0 {
			u.Data = append([]byte(nil), u.Data...)
		}
		return u.Data, lv, nil
	}
	return nil, nil, fmt.Errorf("codec %#x in a UnixFS file", c.Prefix().Codec)
}

// Seek moves to an offset; the next Read descends to it from the root.
func (f *fileReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += f.pos
	case io.SeekEnd:
		offset += f.size
	}
	if offset < 0 {
		return f.pos, errors.New("seek before the start of the file")
	}
	if offset == f.pos && len(f.stack) == 0 && len(f.left) == 0 {
		return offset, nil // not started: rootRaw is still good
	}
	f.pos, f.left, f.stack, f.rootRaw = offset, nil, f.stack[:0], nil
	return offset, nil
}

// Close gives the leaf buffer back.
func (f *fileReader) Close() error {
	if f.buf != nil {
		leafBufs.Put(f.buf)
		f.buf, f.left, f.rootRaw = nil, nil, nil
	}
	return nil
}
