package blockstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/chunker"
	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// A leaf of a sync --nocopy is stored as a reference to the bytes of the
// file it was read from: a record of kind kindRef, whose data is a
// descriptor (the file's path and identity, the range, the framing), and
// whose index entry has the block's size and sum as a copy's has. A
// reference is only as good as its file: one that changed since (another
// inode, size, mtime or change time, gone, unreadable, other bytes; a
// chmod moves the change time) makes the block
// unavailable, never wrong: a read checks the file's identity, then the
// block it rebuilt against the sum (xxh3) written with it, as every read
// of a copy is checked (verify.go), and thorough reads (fsck) and blocks
// without a sum against the CID's hash too. Why the sum is enough where
// the file is outside the repository's control: a write to it moves its
// change time, which no call sets back (only the clock can), so a file
// changed on purpose fails the identity check before its bytes are read;
// the sum is left to catch what the disk does, as for a copy.
//
// Descriptor (little-endian):
//
//	u8 version (1), u64 dev, u64 ino, i64 size, i64 mtime s, u32 mtime ns,
//	i64 change time ns, u64 offset, u32 length, u8 head length, head,
//	u8 tail length, tail, u16 path length, path
const (
	kindRef    uint8 = 1
	refVersion       = 1
	refFixed         = 1 + 8 + 8 + 8 + 8 + 4 + 8 + 8 + 4 + 1 + 1 + 2
	// refReadAhead is what a read of a reference's record asks for
	// first: the head, multihash and a descriptor with a path of a few
	// hundred bytes; a longer one is read again whole.
	refReadAhead = 512
)

// ErrUnavailable means a block is stored as a reference to a file that
// changed (or went) since: the repository cannot give its bytes. It is
// not corruption: the repository holds what it promised, and the next
// sync of the ref references the file's new bytes.
var ErrUnavailable = errors.New("block unavailable: the file it references changed since it was stored")

// UnavailableError is ErrUnavailable for one file.
type UnavailableError struct {
	Path string
	Why  string
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("%s: %s (%v)", e.Path, e.Why, ErrUnavailable)
}

// Is makes an unavailable block also a block not found (ipld.IsNotFound):
// what reads the store as a boxo Blockstore (serve, a DAG walk) takes it
// for absent; the message names the file.
func (e *UnavailableError) Is(target error) bool {
	_, notFound := target.(ipld.ErrNotFound)
	return target == ErrUnavailable || notFound
}

// refDesc is a decoded descriptor.
type refDesc struct {
	dev, ino   uint64
	size       int64
	mtime      time.Time
	ctime      int64
	off        int64
	length     uint32
	head, tail []byte
	path       string
}

func descOf(at chunker.LeafAt) refDesc {
	return refDesc{
		dev: at.Dev, ino: at.Ino, size: at.Size, mtime: at.MTime, ctime: at.CTime, off: at.Off, length: uint32(at.Len),
		head: at.Head, tail: at.Tail, path: at.Path,
	}
}

// blockSize is the size of the block the descriptor rebuilds.
func (d *refDesc) blockSize() int { return len(d.head) + int(d.length) + len(d.tail) }

// encodedLen is the length of d's encoding.
func (d *refDesc) encodedLen() int { return refFixed + len(d.head) + len(d.tail) + len(d.path) }

// check reports a descriptor too long to encode.
func (d *refDesc) check() error {
	if len(d.head) > 255 || len(d.tail) > 255 || len(d.path) > 65535 {
		return fmt.Errorf("reference to %s: framing or path too long to store", d.path)
	}
	return nil
}

// appendTo appends d's encoding to b.
func (d *refDesc) appendTo(b []byte) ([]byte, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	b = append(b, refVersion)
	b = binary.LittleEndian.AppendUint64(b, d.dev)
	b = binary.LittleEndian.AppendUint64(b, d.ino)
	b = binary.LittleEndian.AppendUint64(b, uint64(d.size))
	b = binary.LittleEndian.AppendUint64(b, uint64(d.mtime.Unix()))
	b = binary.LittleEndian.AppendUint32(b, uint32(d.mtime.Nanosecond()))
	b = binary.LittleEndian.AppendUint64(b, uint64(d.ctime))
	b = binary.LittleEndian.AppendUint64(b, uint64(d.off))
	b = binary.LittleEndian.AppendUint32(b, d.length)
	b = append(append(b, byte(len(d.head))), d.head...)
	b = append(append(b, byte(len(d.tail))), d.tail...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(d.path)))
	return append(b, d.path...), nil
}

var errBadRef = fmt.Errorf("%w (a reference's descriptor is malformed)", ErrCorrupt)

func decodeRef(b []byte) (refDesc, error) {
	var d refDesc
	if len(b) < refFixed || b[0] != refVersion {
		return d, errBadRef
	}
	d.dev = binary.LittleEndian.Uint64(b[1:])
	d.ino = binary.LittleEndian.Uint64(b[9:])
	d.size = int64(binary.LittleEndian.Uint64(b[17:]))
	d.mtime = time.Unix(int64(binary.LittleEndian.Uint64(b[25:])), int64(binary.LittleEndian.Uint32(b[33:]))).UTC()
	d.ctime = int64(binary.LittleEndian.Uint64(b[37:]))
	d.off = int64(binary.LittleEndian.Uint64(b[45:]))
	d.length = binary.LittleEndian.Uint32(b[53:])
	rest := b[57:]
	field := func(n int) []byte {
		if n > len(rest) {
			rest = nil
			return nil
		}
		f := rest[:n]
		rest = rest[n:]
		return f
	}
	hl := field(1)
	if hl == nil {
		return d, errBadRef
	}
	d.head = field(int(hl[0]))
	tl := field(1)
	if tl == nil {
		return d, errBadRef
	}
	d.tail = field(int(tl[0]))
	pl := field(2)
	if pl == nil {
		return d, errBadRef
	}
	path := field(int(binary.LittleEndian.Uint16(pl)))
	if path == nil || len(rest) != 0 || d.off < 0 || d.off+int64(d.length) > d.size {
		return d, errBadRef
	}
	d.path = string(path)
	return d, nil
}

// sameFile reports why st is not the file d was read from ("": it is).
func (d *refDesc) sameFile(st *unix.Stat_t) string {
	ms := metadata.FromStatT(st)
	switch {
	case ms.Type != metadata.File:
		return "not a regular file any more"
	case uint64(st.Dev) != d.dev || uint64(st.Ino) != d.ino:
		return "replaced by another file"
	case ms.Size != d.size:
		return fmt.Sprintf("size changed from %d to %d", d.size, ms.Size)
	case !ms.MTime.Equal(d.mtime):
		return "modified since"
	case st.Ctim.Nano() != d.ctime:
		return "changed since (its change time moved: a rewrite, chmod or chown)"
	}
	return ""
}

// holds reports whether d's file is still the one it was read from.
func (d *refDesc) holds() bool {
	var st unix.Stat_t
	return fsat.Lstat(unix.AT_FDCWD, d.path, &st) == nil && d.sameFile(&st) == ""
}

// readRefDesc reads the descriptor of the reference record at l, the
// block with multihash h.
func readRefDesc(p *packFile, l loc, h mh.Multihash) (refDesc, error) {
	var ahead [refReadAhead + maxMHLen]byte
	buf := ahead[:refReadAhead+len(h)]
	n := len(buf)
	if !p.readCached(buf, int64(l.off)) {
		var err error
		if n, err = p.f.ReadAt(buf, int64(l.off)); err != nil && !errors.Is(err, io.EOF) {
			return refDesc{}, fmt.Errorf("read pack %s at %d: %w", l.pack, l.off, err)
		}
	}
	buf = buf[:n]
	if n < recordHead+len(h) || int(buf[4]) != len(h) || string(buf[recordHead:recordHead+len(h)]) != string(h) {
		return refDesc{}, fmt.Errorf("pack %s at %d: %w", l.pack, l.off, ErrCorrupt)
	}
	dl := int(binary.LittleEndian.Uint32(buf))
	if end := recordHead + len(h) + dl; end > len(buf) {
		buf = make([]byte, end)
		if _, err := p.f.ReadAt(buf, int64(l.off)); err != nil {
			if errors.Is(err, io.EOF) {
				err = ErrCorrupt
			}
			return refDesc{}, fmt.Errorf("read pack %s at %d: %w", l.pack, l.off, err)
		}
	}
	d, err := decodeRef(buf[recordHead+len(h) : recordHead+len(h)+dl])
	if err == nil && d.blockSize() != int(l.size) {
		err = errBadRef
	}
	if err != nil {
		return d, fmt.Errorf("pack %s at %d: %w", l.pack, l.off, err)
	}
	return d, nil
}

// readRef rebuilds the block with multihash h from the reference record
// at l in f, into buf when it has room: the file's identity checked, its
// range read, framed, and checked against its sum, and with thorough (or
// no sum) against h. Any difference is an UnavailableError.
func readRef(p *packFile, l loc, h mh.Multihash, buf []byte, thorough bool) ([]byte, error) {
	d, err := readRefDesc(p, l, h)
	if err != nil {
		return nil, err
	}
	n := d.blockSize()
	if cap(buf) < n {
		buf = make([]byte, 0, n+pageSize)
	}
	start := refStart(cap(buf), n, len(d.head), d.off)
	buf = buf[start : start+n]
	if why := d.read(buf[len(d.head):len(d.head)+int(d.length)], !p.noWait.Load()); why != "" {
		return nil, &UnavailableError{Path: d.path, Why: why}
	}
	copy(buf, d.head)
	copy(buf[len(d.head)+int(d.length):], d.tail)
	if (l.sum != 0 && xxh3.Hash(buf) != l.sum) || ((thorough || l.sum == 0) && checkHash(h, buf) != nil) {
		return nil, &UnavailableError{Path: d.path, Why: "its bytes changed since"}
	}
	return buf, nil
}

// pageSize is the unit of the page cache's copies (refStart).
const pageSize = 4096

// refStart is where in a buffer of capacity c a reference's block of n
// bytes is best read, its file's bytes (after head bytes of framing) being
// at off in the file: so that they land 64 bytes past off's place in a
// page, if the buffer has room. The kernel copies from the page cache at
// half the speed when the destination lies at or a few bytes past the
// source's place in a page (the copy's loads alias its recent stores: see
// chunker's headroom), and a file's chunks start on page boundaries.
func refStart(c, n, head int, off int64) int {
	at := int((off + 64) % pageSize)
	for at < head {
		at += pageSize
	}
	if start := at - head; start+n <= c {
		return start
	}
	return 0
}

// read reads d's range of its file into b, checking first that the file
// is the one d was read from; it says why not ("": read). A change while
// it reads shows in the sum or hash its caller checks.
func (d *refDesc) read(b []byte, tryCached bool) string {
	fd, err := fsat.Open(unix.AT_FDCWD, d.path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return "open: " + err.Error()
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := fsat.Fstat(fd, &st); err != nil {
		return "stat: " + err.Error()
	}
	if why := d.sameFile(&st); why != "" {
		return why
	}
	if tryCached {
		// As the packs are read (packFile.readCached).
		if n, _ := fsat.PreadNoWait(uintptr(fd), b, d.off); n == len(b) {
			return ""
		}
	}
	if err := fsat.PreadFull(fd, b, d.off); err != nil {
		return "read: " + err.Error()
	}
	return ""
}

// PutLeafRef stores the leaf c as a reference to at's bytes
// (chunker.LeafReferrer), unless the store has it as a copy or as a
// reference to this very file (path and identity). A leaf two files
// share gets a reference to each: a file the next sync finds unchanged
// is reused unread, and its leaves must not depend on another file that
// may have changed. Reads try every reference of a block.
func (w *Writer) PutLeafRef(ctx context.Context, c cid.Cid, block []byte, at chunker.LeafAt) error {
	if c.Prefix().MhType == mh.IDENTITY {
		return nil
	}
	h := c.Hash()
	k := keyOf(h)
	d := descOf(at)
	has, err := w.s.packs.usable(k, h, &d)
	if err != nil {
		return fmt.Errorf("block store %s: %w", w.s.dir, err)
	}
	if has {
		return nil
	}
	if err := d.check(); err != nil {
		return err
	}
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		return w.err
	}
	w.newLocked(block)
	w.mu.Unlock()
	if w.discard {
		return nil
	}

	err = w.s.packs.w.putRef(k, h, &d, len(block), xxh3.Hash(block))

	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("write blocks to %s: %w", w.s.dir, err)
	}
	return w.err
}

var _ chunker.LeafReferrer = (*Writer)(nil)

// usable reports whether the store holds block k (multihash h) as a
// copy, or as a durable reference to the file d names, as it is now.
func (p *packStore) usable(k key, h mh.Multihash, d *refDesc) (bool, error) {
	if p.w == nil {
		// A dry run's store: it counts what it would write.
		_, ok, err := p.lookup(k)
		return ok, err
	}
	if _, ok := p.w.pendingCopy(k); ok {
		return true, nil
	}
	ls, err := p.set.findAll(k)
	if err != nil {
		return false, err
	}
	if len(ls) > 0 && ls[0].kind != kindRef {
		return true, nil // findAll puts a copy first
	}
	for _, l := range ls {
		if o, err := p.set.refDesc(l, h); err == nil && o.sameAs(d) {
			return true, nil
		}
	}
	return false, nil
}

// sameAs reports whether o and d reference the same file, as it was.
func (o *refDesc) sameAs(d *refDesc) bool {
	return o.path == d.path && o.dev == d.dev && o.ino == d.ino && o.size == d.size && o.mtime.Equal(d.mtime) && o.ctime == d.ctime
}

// refDesc reads the descriptor of the reference at l.
func (s *packSet) refDesc(l loc, h mh.Multihash) (refDesc, error) {
	p, err := s.acquire(l.pack)
	if err != nil {
		return refDesc{}, err
	}
	defer s.release(p)
	return readRefDesc(p, l, h)
}

// findAll is every entry for k in the loaded indexes, copies first.
func (s *packSet) findAll(k key) ([]loc, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []loc
	for _, x := range s.idx {
		ls, err := x.findAll(k)
		if err != nil {
			return nil, err
		}
		out = append(out, ls...)
	}
	for i := range out {
		if out[i].kind != kindRef {
			out[0], out[i] = out[i], out[0]
			break
		}
	}
	return out, nil
}

// findAll is every entry for k in x (a key has several where a reference
// went stale and a newer one was written, or a copy was made beside one).
func (x *idxFile) findAll(k key) ([]loc, error) {
	if x.count == 0 || !x.maybe(k) {
		return nil, nil
	}
	p := x.prefix(k)
	lo, hi := int(x.fanout[p]), int(x.fanout[p+1])
	es := x.esize
	buf := make([]byte, (hi-lo)*es)
	if _, err := x.f.ReadAt(buf, x.entries+int64(lo)*int64(es)); err != nil {
		return nil, fmt.Errorf("read index %s: %w", x.name, err)
	}
	var out []loc
	for i := 0; i < hi-lo; i++ {
		if string(buf[i*es:i*es+keySize]) == string(k[:]) {
			e := decodeIdxEntry(buf[i*es:], es)
			out = append(out, e.loc(x.packs[e.pack]))
		}
	}
	return out, nil
}

// readOther reads block h from an entry other than failed, whose read
// gave ErrUnavailable: a copy, or a newer reference. It returns the
// first error when none reads.
func (s *packSet) readOther(failed loc, h mh.Multihash, buf []byte, thorough bool, first error) ([]byte, error) {
	ls, err := s.findAll(keyOf(h))
	if err != nil {
		return nil, err
	}
	for _, l := range ls {
		if l == failed {
			continue
		}
		var data []byte
		if l.kind == kindRef {
			data, err = s.readRefAt(l, h, buf, thorough)
		} else {
			data, err = s.read(l, h, buf, thorough)
		}
		if err == nil {
			return data, nil
		}
	}
	return nil, first
}

// readRefAt is readRef of the record at l, without looking further.
func (s *packSet) readRefAt(l loc, h mh.Multihash, buf []byte, thorough bool) ([]byte, error) {
	p, err := s.acquire(l.pack)
	if err != nil {
		return nil, err
	}
	defer s.release(p)
	return readRef(p, l, h, buf, thorough)
}

// putRef appends a reference record for block k (multihash h), whose
// data is desc, for a block of size bytes with xxh3 sum.
func (w *packWriter) putRef(k key, h mh.Multihash, d *refDesc, size int, sum uint64) error {
	if len(h) > maxMHLen {
		return fmt.Errorf("multihash of %d bytes is too long to store", len(h))
	}
	n := d.encodedLen()
	rec := int64(recordHead + len(h) + n)
	// The record is only copied into the stage: built on the stack when
	// it fits, as nearly every one does.
	var buf [512]byte
	src := buf[:0]
	if rec > int64(len(buf)) {
		src = make([]byte, 0, rec)
	}
	src = src[:recordHead+len(h)]
	putRecordHead(src, h, n)
	src, err := d.appendTo(src)
	if err != nil {
		return err
	}

	var segs [3]segment
	ss, err := w.reserve(k, rec, kindRef, size, sum, segs[:0])
	for _, sg := range ss {
		src = src[copy(sg.b, src):]
		w.release(sg.st)
	}
	return err
}

// staleRefs is what a gc found of the references of live blocks: those
// whose file changed (stale), and the keys with an entry a read gives
// (a copy, or a reference that holds).
type staleRefs struct {
	stale map[loc]bool
	fresh map[key]bool
}

// dropRef reports whether gc drops the entry e of pack: a reference
// whose file changed, for a block the store holds otherwise too. A live
// block held only by stale references keeps them: it stays unavailable,
// not missing.
func (g *collection) dropRef(e entry, pack string) bool {
	if e.kind != kindRef {
		return false
	}
	if g.stale == nil {
		g.stale = &staleRefs{stale: map[loc]bool{}, fresh: map[key]bool{}}
		for _, x := range g.xs {
			err := x.each(func(e entry, pack string) error {
				if g.state[e.key] == dead {
					return nil
				}
				l := e.loc(pack)
				if e.kind == kindRef && !g.w.set.refHolds(l, e.key) {
					g.stale.stale[l] = true
				} else {
					g.stale.fresh[e.key] = true
				}
				return nil
			})
			if err != nil {
				// Unreadable indexes fail the gc elsewhere; here every
				// reference is taken to hold.
				g.stale.stale = map[loc]bool{}
				break
			}
		}
	}
	l := e.loc(pack)
	return g.stale.stale[l] && g.stale.fresh[e.key]
}

// refHolds reports whether the reference at l (key k) still reads.
func (s *packSet) refHolds(l loc, k key) bool {
	h, err := s.recordHash(l)
	if err != nil || keyOf(h) != k {
		return false
	}
	d, err := s.refDesc(l, h)
	return err == nil && d.holds()
}

// copyRef writes the reference record at l (block multihash h) again, in
// the open pack: gc moving it, descriptor and all.
func (w *packWriter) copyRef(l loc, h mh.Multihash) error {
	d, err := w.set.refDesc(l, h)
	if err != nil {
		return err
	}
	return w.putRef(keyOf(h), h, &d, int(l.size), l.sum)
}

// recordData is about how many bytes e's record holds after its
// multihash: a copy's block, or a reference's descriptor.
func recordData(e entry) uint32 {
	if e.kind == kindRef {
		return refFixed + 64 + 100
	}
	return e.size
}

// hasCopy is a copying writer's look for block k: a store that holds it
// only as references (a --nocopy sync's) gets a copy, so that turning
// --nocopy off copies a ref's files again, and a --copy file's leaf is
// copied though a referenced file shares it.
func (p *packStore) hasCopy(k key) (bool, error) {
	l, ok, err := p.lookup(k)
	if err != nil || !ok || l.kind != kindRef {
		return ok, err
	}
	ls, err := p.set.findAll(k)
	if err != nil {
		return false, err
	}
	return len(ls) > 0 && ls[0].kind != kindRef, nil
}
