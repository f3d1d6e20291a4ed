package blockstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/chunker"
	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
)

// Clones (sync --nocopy=reflink, and gc): on a file system whose files
// can share extents (btrfs; XFS made with reflink=1), a block's bytes are
// cloned into a pack (FICLONERANGE) from the file that has them instead
// of being written: the record is a copy like any other (kind 0, read as
// one, nothing referenced outside the repository), it costs no space
// while both files share the extents, and a later write to either copies
// the extent it touches first, so a rewritten source cannot change what
// an older root reads.
//
// A clone moves whole file-system blocks, at offsets that are multiples
// of the block size (statfs f_bsize) in both files. Cloned records go into
// packs of their own, written with pwrite(2) and the clone ioctl rather
// than through the O_DIRECT stages, each record placed so that the bytes
// to clone start at a multiple of the block size:
//
//	record:  u32 data length, u8 multihash length, multihash, data
//	data:    pre (written) | span (cloned: whole blocks) | rest (written)
//
// For a file leaf, pre is the dag-pb framing before the chunk (none in a
// raw leaf), the span the chunk's whole blocks (a chunk starts at a
// multiple of the chunk size, so at a block boundary), and rest the
// chunk's last partial block and the framing after it. The bytes between
// one record's end and the next one's head, fewer than a block, are left
// unwritten: zeros no index names. A leaf without a whole block, or of a
// chunk size that is not a multiple of the block size, is copied.
//
// gc moves a block of a pack it rewrites by cloning its whole blocks the
// same way (GCResult.Cloned), so blocks it moves stay shared with the
// files they were cloned from, if they span at least minGCClone whole
// blocks; smaller ones, and all where the file system refuses, it copies.

// minGCClone is the fewest whole blocks a record must span for gc to
// clone it rather than copy it. The alignment costs up to a block per
// record: in a pack of records of a few blocks that is a share large
// enough for gc to take it for dead space (a pack is kept while its live
// records fill three quarters of it), and cloned again into a pack laid
// out the same way, such records would be moved by every gc. Copied, they
// are moved once, and no longer share their source's extents.
const minGCClone = 8

// clonePacks is a writer's pack of cloned records, under packWriter.mu.
type clonePacks struct {
	cur   *openPack // nil: none open
	bsize int64     // the repository's file-system block size; 0: not read yet
	// refused: a clone between two of the repository's packs was
	// refused, so gc copies what it moves.
	refused bool
}

// errCloneRefused wraps a clone the file system refused (another file
// system, one without shared extents): nothing was stored.
var errCloneRefused = errors.New("the file system cannot clone it")

// cloneRefusal reports whether err is the kernel refusing a clone rather
// than failing one: the files are on two file systems (EXDEV), the file
// system has no reflinks (EOPNOTSUPP, ENOTTY), or not for these files or
// ranges (EINVAL).
func cloneRefusal(err error) bool {
	return errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) ||
		errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, errors.ErrUnsupported)
}

// blockSizeLocked is the repository's file-system block size.
func (w *packWriter) blockSizeLocked() (int64, error) {
	if w.clones.bsize == 0 {
		bs, err := fsBlockSize(w.set.dir)
		if err != nil {
			return 0, fmt.Errorf("block size of %s: %w", w.set.dir, err)
		}
		if bs <= 0 || bs&(bs-1) != 0 {
			return 0, fmt.Errorf("block size of %s: %d is not a power of two", w.set.dir, bs)
		}
		w.clones.bsize = bs
	}
	return w.clones.bsize, nil
}

func (w *packWriter) blockSize() (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.blockSizeLocked()
}

// clonePackLocked is the open clone pack, with room for rec bytes: the
// current one, or a new one after sealing it.
func (w *packWriter) clonePackLocked(rec int64) (*openPack, error) {
	if w.lost != nil {
		return nil, fmt.Errorf("write packs in %s: %w", w.set.dir, w.lost)
	}
	if p := w.clones.cur; p != nil && p.size+rec > w.limit {
		w.clones.cur = nil
		if err := w.sealLocked(p); err != nil {
			return nil, err
		}
	}
	if w.clones.cur == nil {
		name := randomName()
		f, err := os.OpenFile(filepath.Join(w.set.dir, name+".pack"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return nil, fmt.Errorf("create pack in %s: %w", w.set.dir, err)
		}
		w.set.mu.Lock()
		w.set.files[name] = &packFile{f: f}
		w.set.mu.Unlock()
		w.clones.cur = &openPack{name: name, f: f, fd: int(f.Fd()), rf: f}
	}
	p := w.clones.cur
	if err := p.failed(); err != nil {
		return nil, w.writeErr(p, err)
	}
	return p, nil
}

// sealClonesLocked seals the open clone pack, if any (a flush's).
func (w *packWriter) sealClonesLocked() error {
	p := w.clones.cur
	if p == nil {
		return nil
	}
	w.clones.cur = nil
	return w.sealLocked(p)
}

// putCloned appends a record of block (key k, multihash h) to the clone
// pack: block[pre:pre+n] cloned from src at soff (both multiples of the
// block size), the rest of it written. With check, the cloned bytes are
// read back and, where they are not block's, written over: src may have
// changed since block was read from it, and the record must hold the
// bytes its sum and CID were made from. A refused clone is
// errCloneRefused, with nothing indexed.
func (w *packWriter) putCloned(k key, h mh.Multihash, block []byte, pre int, src int, soff, n int64, check bool) error {
	if len(h) > maxMHLen {
		return fmt.Errorf("multihash of %d bytes is too long to store", len(h))
	}
	w.mu.Lock()
	p, off, err := w.cloneLocked(h, block, pre, src, soff, n)
	if err != nil || !check {
		if err == nil {
			w.claim(p, k, kindBlock, off, len(block), xxh3.Hash(block))
		}
		w.mu.Unlock()
		return err
	}
	// Checked outside the lock, so that one worker's read does not hold
	// up the other's clone; the pack's seal waits for it (writes).
	p.writes.Add(1)
	w.mu.Unlock()
	defer p.writes.Done()
	data := off + int64(recordHead+len(h)+pre)
	span := block[pre : pre+int(n)]
	got := make([]byte, n)
	if err := fsat.PreadFull(p.fd, got, data); err != nil {
		p.setErr(err)
		return w.writeErr(p, err)
	}
	if !bytes.Equal(got, span) {
		if err := fsat.PwriteAll(p.fd, span, data); err != nil {
			p.setErr(err)
			return w.writeErr(p, err)
		}
	}
	w.claim(p, k, kindBlock, off, len(block), xxh3.Hash(block))
	return nil
}

// cloneLocked appends putCloned's record to the clone pack and returns
// the pack and the record's offset in it, not yet indexed.
func (w *packWriter) cloneLocked(h mh.Multihash, block []byte, pre int, src int, soff, n int64) (*openPack, int64, error) {
	bs, err := w.blockSizeLocked()
	if err != nil {
		return nil, 0, err
	}
	head := int64(recordHead + len(h) + pre)
	p, err := w.clonePackLocked(bs + head + int64(len(block)-pre))
	if err != nil {
		return nil, 0, err
	}
	data := (p.size + head + bs - 1) &^ (bs - 1) // where the span goes
	off := data - head
	rec := make([]byte, head)
	putRecordHead(rec, h, len(block))
	copy(rec[recordHead+len(h):], block[:pre])
	if err := fsat.PwriteAll(p.fd, rec, off); err != nil {
		p.setErr(err)
		return nil, 0, w.writeErr(p, err)
	}
	if err := cloneRange(p.fd, data, src, soff, n); err != nil {
		// What was written lies past the pack's end (p.size): the next
		// record or the seal's truncation takes its place.
		if cloneRefusal(err) {
			return nil, 0, fmt.Errorf("%w: %w", errCloneRefused, err)
		}
		p.setErr(err)
		return nil, 0, w.writeErr(p, err)
	}
	if err := fsat.PwriteAll(p.fd, block[pre+int(n):], data+n); err != nil {
		p.setErr(err)
		return nil, 0, w.writeErr(p, err)
	}
	p.size = data + int64(len(block)-pre)
	return p, off, nil
}

// cloneRecord is gc's move of the block at l (multihash h, whose checked
// bytes are data) into the clone pack, its whole blocks cloned from its
// pack. It reports false, having stored nothing, where the record spans
// too few whole blocks or the file system refuses (then gc copies it).
func (w *packWriter) cloneRecord(l loc, h mh.Multihash, data []byte) (bool, error) {
	w.mu.Lock()
	refused := w.clones.refused
	bs, err := w.blockSizeLocked()
	w.mu.Unlock()
	if refused || err != nil {
		return false, err
	}
	at := int64(l.off) + recordHead + int64(len(h))
	start := (at + bs - 1) &^ (bs - 1)
	end := (at + int64(len(data))) &^ (bs - 1)
	if end-start < minGCClone*bs {
		return false, nil
	}
	p, err := w.set.acquire(l.pack)
	if err != nil {
		return false, err
	}
	defer w.set.release(p)
	err = w.putCloned(keyOf(h), h, data, int(start-at), int(p.f.Fd()), start, end-start, false)
	if errors.Is(err, errCloneRefused) {
		w.mu.Lock()
		w.clones.refused = true
		w.mu.Unlock()
		return false, nil
	}
	return err == nil, err
}

// Reflinks is w as the DAG of a sync --nocopy=reflink: a file leaf is
// cloned from its file into the store instead of referenced
// (chunker.LeafReferrer). Where the file system refuses (the source on
// another file system than the repository, or one without reflinks),
// the leaves of files on that device are stored as references
// (Writer.PutLeafRef), and warn is told once per device.
func (w *Writer) Reflinks(warn func(path string, err error)) *ReflinkWriter {
	return &ReflinkWriter{Writer: w, warn: warn, refused: map[uint64]bool{}}
}

// ReflinkWriter is a Writer that clones file leaves (Writer.Reflinks).
type ReflinkWriter struct {
	*Writer
	warn func(path string, err error)

	mu      sync.Mutex      // held alone
	refused map[uint64]bool // devices whose files are referenced
}

// PutLeafRef stores the leaf c, whose bytes block were read from at, as
// a clone of its file's bytes, unless the store has a copy of it.
func (r *ReflinkWriter) PutLeafRef(ctx context.Context, c cid.Cid, block []byte, at chunker.LeafAt) error {
	r.mu.Lock()
	refused := r.refused[at.Dev]
	r.mu.Unlock()
	if r.discard || refused || c.Prefix().MhType == mh.IDENTITY {
		return r.Writer.PutLeafRef(ctx, c, block, at)
	}
	err := r.clone(ctx, c, block, at)
	if !errors.Is(err, errCloneRefused) {
		return err
	}
	r.mu.Lock()
	first := !r.refused[at.Dev]
	r.refused[at.Dev] = true
	r.mu.Unlock()
	if first && r.warn != nil {
		r.warn(at.Path, fmt.Errorf("%s cannot be cloned into the repository (%w); its leaves, and those of every file on its file system, are stored as references (--nocopy)", at.Path, err))
	}
	return r.Writer.PutLeafRef(ctx, c, block, at)
}

// clone stores block c as clone of at's bytes, or as a copy where they
// cannot be cloned whole blocks at a time or the file is not the one
// read any more.
func (r *ReflinkWriter) clone(ctx context.Context, c cid.Cid, block []byte, at chunker.LeafAt) error {
	pw := r.s.packs.w
	bs, err := pw.blockSize()
	if err != nil {
		return fmt.Errorf("write blocks to %s: %w", r.s.dir, err)
	}
	n := int64(at.Len) &^ (bs - 1)
	if at.Off%bs != 0 || n == 0 {
		return r.PutBlock(ctx, c, block)
	}
	h := c.Hash()
	k := keyOf(h)
	has, err := r.s.packs.hasCopy(k)
	if err != nil {
		return fmt.Errorf("block store %s: %w", r.s.dir, err)
	}
	if has {
		return nil
	}
	fd, err := fsat.Open(unix.AT_FDCWD, at.Path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		// Gone since it was read: the bytes are at hand.
		return r.PutBlock(ctx, c, block)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	d := descOf(at)
	if err := fsat.Fstat(fd, &st); err != nil || d.sameFile(&st) != "" {
		return r.PutBlock(ctx, c, block)
	}

	r.Writer.mu.Lock()
	if r.err != nil {
		r.Writer.mu.Unlock()
		return r.err
	}
	if _, flying := r.inFlight[c]; flying {
		r.Writer.mu.Unlock()
		return nil
	}
	r.inFlight[c] = struct{}{}
	r.Writer.mu.Unlock()

	err = pw.putCloned(k, h, block, len(at.Head), fd, at.Off, n, true)

	r.Writer.mu.Lock()
	defer r.Writer.mu.Unlock()
	delete(r.inFlight, c)
	switch {
	case errors.Is(err, errCloneRefused):
		return err
	case err != nil:
		if r.err == nil {
			r.err = fmt.Errorf("write blocks to %s: %w", r.s.dir, err)
		}
		return r.err
	}
	r.newLocked(block)
	return r.err
}
