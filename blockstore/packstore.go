package blockstore

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fastpath"
)

// packStore is a repository's blocks as a boxo Blockstore. Without a
// writer it only reads (serve, export and pull, which take no lock).
type packStore struct {
	set *packSet
	w   *packWriter
}

var errReadOnly = errors.New("the repository is open for reading only")

func (p *packStore) lookup(k key) (loc, bool, error) {
	if p.w != nil {
		if l, ok := p.w.pendingLoc(k); ok {
			return l, true, nil
		}
	}
	l, ok, err := p.set.find(k)
	if ok || err != nil || p.w != nil {
		return l, ok, err
	}
	// A reader: a sync or gc may have changed the store since it loaded.
	if changed, err := p.set.load(); err != nil || !changed {
		return loc{}, false, err
	}
	return p.set.find(k)
}

func (p *packStore) Has(_ context.Context, c cid.Cid) (bool, error) {
	_, ok, err := p.lookup(keyOf(c.Hash()))
	return ok, err
}

func (p *packStore) GetSize(_ context.Context, c cid.Cid) (int, error) {
	l, ok, err := p.lookup(keyOf(c.Hash()))
	if err != nil {
		return -1, err
	}
	if !ok {
		return -1, ipld.ErrNotFound{Cid: c}
	}
	return int(l.size), nil
}

func (p *packStore) Get(_ context.Context, c cid.Cid) (blocks.Block, error) {
	k := keyOf(c.Hash())
	for retry := true; ; retry = false {
		l, ok, err := p.lookup(k)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ipld.ErrNotFound{Cid: c}
		}
		if p.w != nil {
			if err := p.w.readable(l); err != nil {
				return nil, err
			}
		}
		data, err := p.set.read(l, c.Hash())
		if errors.Is(err, fs.ErrNotExist) && retry && p.w == nil {
			// A gc moved the block and removed its pack since we loaded.
			if _, err := p.set.load(); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", c, err)
		}
		return blocks.NewBlockWithCid(data, c)
	}
}

func (p *packStore) Put(ctx context.Context, b blocks.Block) error {
	return p.PutMany(ctx, []blocks.Block{b})
}

func (p *packStore) PutMany(ctx context.Context, bs []blocks.Block) error {
	if p.w == nil {
		return errReadOnly
	}
	for _, b := range bs {
		k := keyOf(b.Cid().Hash())
		if _, has, err := p.lookup(k); err != nil || has {
			if err != nil {
				return err
			}
			continue
		}
		if err := p.w.put(k, b.Cid().Hash(), b.RawData()); err != nil {
			return err
		}
	}
	return nil
}

// DeleteBlock drops c from the indexes; its bytes go with the next gc
// that rewrites its pack.
func (p *packStore) DeleteBlock(_ context.Context, c cid.Cid) error {
	if p.w == nil {
		return errReadOnly
	}
	if err := p.w.flush(); err != nil {
		return err
	}
	drop := keyOf(c.Hash())
	return p.w.compact(func(e entry, _ string) bool { return e.key != drop }, nil)
}

// AllKeysChan lists every indexed block, as CIDv1 raw (the store keeps
// multihashes, as kubo's does). A writer first flushes, so that what it
// put is indexed.
func (p *packStore) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	if p.w != nil {
		if err := p.w.flush(); err != nil {
			return nil, err
		}
	} else if _, err := p.set.load(); err != nil {
		return nil, err
	}
	out := make(chan cid.Cid)
	go func() {
		defer close(out)
		seen := map[key]struct{}{}
		for _, x := range p.set.sorted() {
			err := x.each(func(e entry, pack string) error {
				if _, ok := seen[e.key]; ok {
					return nil
				}
				seen[e.key] = struct{}{}
				h, err := p.set.recordHash(loc{pack: pack, off: e.off, size: e.size})
				if err != nil {
					return err
				}
				select {
				case out <- cid.NewCidV1(cid.Raw, h):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			if err != nil {
				return
			}
		}
	}()
	return out, nil
}

func (p *packStore) HashOnRead(bool) {}

// packWriter appends blocks to new packs. Writers reserve their record's
// place under a lock and write it outside, so blocks from all cores go
// into one pack without waiting for each other's copies.
//
// Lock order: mu before pmu, openPack.entMu, packSet.mu, openPack.errMu
// and aioStages.mu; none of those five is held while another is taken. A
// copy into a stage, its end, and the write of a full stage by the copier
// that ends it never take mu (a seal waits for them while it holds mu):
// only errMu and aioStages.mu, and commitRecord's claim pmu and entMu.
//
// Who owns what, so that no write can land in a file it was not meant for
// and no buffer is unmapped under a copy or a write:
//   - A stage buffer is the writer's while it is in free. Taken, it is
//     its stage's: filled by copies, then, once full and every copy into
//     it ended, written by its stageWriter, whose end (written) puts it
//     back in free; the stage being filled when its pack is sealed goes
//     back there from sealLocked once its copies ended. close unmaps only
//     the buffers in free.
//   - A pack's O_DIRECT descriptor is its openPack's. It is closed only
//     once every stage handed off to be written has been written and
//     ended (waitWritesLocked), whether the pack is sealed or its writes
//     failed: a stage written after would go through a number the kernel
//     may have given to another file since (the next pack, pebble's). If
//     that cannot be known (a reap failed: lost), it is never closed.
type packWriter struct {
	set   *packSet
	limit int64 // bytes of records per pack

	mu      sync.Mutex
	cur     *openPack
	pmu     sync.RWMutex // pending
	pending map[key]loc  // written, not yet in an idx of the set
	unnamed []string     // this run's .idx.new files
	free    chan []byte  // stage buffers not in use (nil: not mapped yet)
	// lost, under mu: a reap failed, so AIO writes may be in flight that
	// nothing will end. Nothing more is written, and no descriptor or
	// buffer they may use is let go.
	lost error

	// fast: the Linux fast paths may be tried (fastpath.On when opened):
	// O_DIRECT and AIO writes, one syncfs per flush. Without, every stage
	// is written with pwrite(2) through the page cache, and each pack and
	// idx fsynced when sealed.
	fast     bool
	aioTried bool        // under mu
	aio      stageWriter // see aioLocked; nil: none (yet, or refused here)
	// Full stages written each way, for tests to see which ran.
	stagesAIO, stagesPwrite atomic.Int64
}

type openPack struct {
	name   string
	f      *os.File   // written only through stage buffers
	fd     int        // f's: read while f may be closing after its last write
	direct bool       // f is its own (O_DIRECT) descriptor, not the one reads use
	size   int64      // bytes of records appended
	st     *stage     // the stage being filled
	onDisk int64      // records below this offset are in the file
	entMu  sync.Mutex // ents: a record reserved under mu is indexed outside it
	ents   []entry
	// Full stages are written by sw: AIO where chosen (direct packs, once
	// the first stage is full and the context could be made), else
	// pwrite(2) by whoever completes them.
	sw      stageWriter
	aio     bool           // sw is AIO: its writes end in reap, into allocated space
	aioSet  bool           // sw is chosen
	writes  sync.WaitGroup // full stages not yet written
	flying  atomic.Int32   // the same, counted, for reaping
	alloc   int64          // bytes of the file allocated ahead, with aio
	noAlloc bool           // fallocate failed: writes extend the file

	errMu sync.Mutex
	err   error // the first failed write
}

// A pack is written in stage buffers of stageSize, at offsets and from
// addresses aligned to dioAlign, with O_DIRECT where the file system
// allows it (not tmpfs): the data goes from the buffer to the disk, not
// copied into the page cache to be written back at the run's syncfs.
// That copy, into memory the kernel has to find for it, was the largest
// cost of an import after hashing (docs/benchmarks.md). A record is copied
// into the stage outside the writer's lock, in the place reserved for it
// under the lock: the copy is ~0.1 s per GB, and with it under the lock
// the other core's writer slept on it and woke late (0.37 s of worker
// time in a 1.7 s small-preset import, in the Go execution trace). A full
// buffer is written
// once the copies into it are done, while the next one fills, by the
// last copier: submitted to AIO (aio_linux.go), or, without AIO or
// O_DIRECT, written with pwrite(2) there and then (stagewriter.go).
const (
	dioAlign     = 4096
	stageSize    = 4 << 20
	stageBuffers = 4
	allocStep    = 64 << 20 // how far ahead a pack written with aio is allocated
)

type stage struct {
	p      *openPack
	buf    []byte
	start  int64 // file offset of buf[0], a multiple of dioAlign
	n      int   // bytes reserved
	copies sync.WaitGroup
	// refs is 1 while the stage fills, plus 1 per segment being copied:
	// whoever drops it to 0 writes the (full) stage.
	refs atomic.Int32
}

func newStage(p *openPack, buf []byte, start int64) *stage {
	st := &stage{p: p, buf: buf, start: start}
	st.refs.Store(1)
	return st
}

// segment is part of a record's reserved place, in one stage.
type segment struct {
	st *stage
	b  []byte
}

func newPackWriter(set *packSet) *packWriter {
	w := &packWriter{set: set, limit: packMax, pending: map[key]loc{}, free: make(chan []byte, stageBuffers), fast: fastpath.On()}
	for range stageBuffers {
		w.free <- nil // allocated when first taken
	}
	return w
}

// aioLocked is the writer's AIO stage writer, made the first time a
// direct pack has a full stage to write: making its context is cheap, but
// destroying it (io_destroy, or the process's exit) waits ~30 ms for an
// RCU grace period, so a run that writes less than a stage makes none,
// and a flush, after which a sync writes nothing more, lets it go
// (dropAIOLocked).
func (w *packWriter) aioLocked() stageWriter {
	if !w.aioTried {
		w.aioTried = true
		if a, err := newAIOStages(w); err == nil {
			w.aio = a
		}
	}
	return w.aio
}

// dropAIOLocked destroys the AIO context, in the background, once no pack
// is open (so nothing is in flight); the next full stage makes another.
// The process's exit waits for what is left of the destroy, no longer.
func (w *packWriter) dropAIOLocked() {
	if w.aio != nil && w.cur == nil {
		go w.aio.close()
		w.aio, w.aioTried = nil, false
	}
}

// buffer takes a stage buffer for p (nil: a new pack, after the last one
// was sealed), mapping it on first use: outside the Go heap, so it does
// not raise the collector's target, and page-aligned, as O_DIRECT wants.
// With aio, a buffer comes free when the writer reaps its write.
func (w *packWriter) buffer(p *openPack) ([]byte, error) {
	b, err := w.freeBuffer(p)
	if err != nil {
		return nil, err
	}
	if b == nil {
		var err error
		if b, err = unix.Mmap(-1, 0, stageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE); err != nil {
			w.free <- nil
			return nil, fmt.Errorf("map a pack buffer: %w", err)
		}
	}
	return b, nil
}

// freeBuffer waits for a stage buffer to be free (nil: not mapped yet).
func (w *packWriter) freeBuffer(p *openPack) ([]byte, error) {
	for {
		select {
		case b := <-w.free:
			return b, nil
		default:
		}
		if p == nil || !p.aio {
			return <-w.free, nil
		}
		if err := w.reapLocked(p); err != nil {
			return nil, err
		}
	}
}

// reapLocked ends p's AIO writes that completed (stageWriter.reap); a
// failure loses the writer (packWriter.lost).
func (w *packWriter) reapLocked(p *openPack) error {
	if err := p.sw.reap(); err != nil {
		w.lost = cmp.Or(w.lost, err)
		return err
	}
	return nil
}

// close lets the writer go; it is not used after. A pack left open (a
// failed run) stays unnamed, and is let go as a sealed one is: its copies
// and writes waited for, then its descriptor closed. Only then are the
// stage buffers unmapped, those that are back in free.
func (w *packWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p := w.cur; p != nil {
		w.cur = nil
		w.releaseStageLocked(p)
		w.waitWritesLocked(p) // an error was the failed run's
		w.closeDirectLocked(p)
	}
	w.dropAIOLocked()
	for {
		select {
		case b := <-w.free:
			if b != nil {
				unix.Munmap(b)
			}
			continue
		default:
		}
		return
	}
}

// releaseStageLocked gives the buffer of p's stage being filled back to
// free, once every copy into it has ended; p takes no record after.
func (w *packWriter) releaseStageLocked(p *openPack) {
	if st := p.st; st != nil {
		st.copies.Wait()
		w.free <- st.buf
		p.st = nil
	}
}

// closeDirectLocked closes p's O_DIRECT descriptor, which the caller has
// waited for every write through (waitWritesLocked): unless the writer is
// lost, when a write may still use it (see packWriter).
func (w *packWriter) closeDirectLocked(p *openPack) {
	if p.direct && w.lost == nil {
		p.f.Close()
	}
}

func (w *packWriter) pendingLoc(k key) (loc, bool) {
	w.pmu.RLock()
	defer w.pmu.RUnlock()
	l, ok := w.pending[k]
	return l, ok
}

func randomName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (w *packWriter) newPack() (*openPack, error) {
	name := randomName()
	path := filepath.Join(w.set.dir, name+".pack")
	rf, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	// The last pack's writes are done (sealLocked): a buffer is free.
	buf, err := w.buffer(nil)
	if err != nil {
		rf.Close()
		os.Remove(path)
		return nil, err
	}
	p := &openPack{name: name, f: rf, fd: int(rf.Fd()), sw: pwriteStages{w}}
	p.st = newStage(p, buf, 0)
	// Where O_DIRECT is refused, at open or (alignment) at the first
	// write, the same stages go through the page cache.
	if w.fast {
		if wf, err := openDirect(path); err == nil {
			if err := pwriteAll(int(wf.Fd()), buf[:dioAlign], 0); err == nil {
				p.f, p.fd, p.direct = wf, int(wf.Fd()), true
			} else {
				wf.Close()
			}
		}
	}
	w.set.mu.Lock()
	w.set.files[name] = &packFile{f: rf}
	w.set.mu.Unlock()
	return p, nil
}

// put appends the block with multihash h and key k (keyOf(h), which the
// caller has for its lookup). The caller has checked the store does not
// hold it.
func (w *packWriter) put(k key, h mh.Multihash, data []byte) error {
	if len(h) > maxMHLen {
		return fmt.Errorf("multihash of %d bytes is too long to store", len(h))
	}
	rec := int64(recordHead + len(h) + len(data))
	var head [recordHead + maxMHLen]byte
	binary.LittleEndian.PutUint32(head[:], uint32(len(data)))
	head[4] = byte(len(h))
	n := copy(head[recordHead:], h)

	var segs [3]segment
	ss, err := w.reserve(k, rec, len(data), segs[:0])
	// Copied in even when the reservation failed part way: a stage's
	// write waits for every segment reserved in it.
	src := head[:recordHead+n]
	for _, sg := range ss {
		c := copy(sg.b, src)
		if c < len(src) {
			src = src[c:]
		} else {
			copy(sg.b[c:], data)
			data = data[len(sg.b)-c:]
			src = nil
		}
		w.release(sg.st)
	}
	return err
}

// reserve places a record of rec bytes for key k (len bytes of block
// data) at the end of the open pack and returns its segments, each to be
// copied into and marked done. Nothing is reserved for a key this run
// already put.
func (w *packWriter) reserve(k key, rec int64, size int, ss []segment) ([]segment, error) {
	if _, ok := w.pendingLoc(k); ok {
		return ss, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	p, err := w.packLocked(rec)
	if err != nil {
		return ss, err
	}
	off := p.size
	if ss, err = w.reserveLocked(p, rec, ss); err != nil {
		return ss, err
	}
	w.claim(p, k, off, size) // put meanwhile: the place reserved stays a hole
	return ss, nil
}

// claim indexes the record at off in p (size bytes of data) under key k,
// unless this run stored k already; it reports whether it did. The record
// may be written after: a read of it waits for the stage's copies.
func (w *packWriter) claim(p *openPack, k key, off int64, size int) bool {
	w.pmu.Lock()
	if _, ok := w.pending[k]; ok {
		w.pmu.Unlock()
		return false
	}
	w.pending[k] = loc{pack: p.name, off: uint32(off), size: uint32(size)}
	w.pmu.Unlock()
	p.entMu.Lock()
	p.ents = append(p.ents, entry{key: k, off: uint32(off), size: uint32(size)})
	p.entMu.Unlock()
	return true
}

// packLocked is the open pack, with room for a record of rec bytes: the
// current one, or a new one after sealing it.
func (w *packWriter) packLocked(rec int64) (*openPack, error) {
	if w.lost != nil {
		return nil, fmt.Errorf("write packs in %s: %w", w.set.dir, w.lost)
	}
	if w.cur != nil && w.cur.size+rec > w.limit {
		p := w.cur
		w.cur = nil
		if err := w.sealLocked(p); err != nil {
			return nil, err
		}
	}
	if w.cur == nil {
		p, err := w.newPack()
		if err != nil {
			return nil, fmt.Errorf("create pack in %s: %w", w.set.dir, err)
		}
		w.cur = p
	}
	if err := w.cur.failed(); err != nil {
		return nil, w.writeErr(w.cur, err)
	}
	return w.cur, nil
}

// record is a block's record reserved in one piece of a stage, for its
// data to be written there by its maker (Writer.ReserveBlock).
type record struct {
	st  *stage
	off int64  // in the pack (st.p)
	b   []byte // the record: head, multihash, data
}

// reserveRecord reserves rec bytes in one piece of the stage being
// filled; false when they do not fit in what is left of it (the caller
// puts the block, copied in two pieces, instead). The record is the
// caller's until it ends it (endRecord), indexed (commitRecord) or not.
func (w *packWriter) reserveRecord(rec int) (*record, bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p, err := w.packLocked(int64(rec))
	if err != nil {
		return nil, false, err
	}
	if st := p.st; len(st.buf)-st.n < rec {
		return nil, false, nil
	}
	r := &record{st: p.st, off: p.size, b: p.st.buf[p.st.n : p.st.n+rec]}
	if _, err := w.reserveLocked(p, int64(rec), nil); err != nil {
		// The place was reserved: ended here, as no caller will, or its
		// stage would never be written and its pack's seal would wait
		// for it forever.
		w.release(r.st)
		return nil, false, err
	}
	return r, true, nil
}

// commitRecord indexes the block with multihash h and key k whose data
// the caller wrote into r, and writes the record's head, unless this run
// stored the block already (then r stays a hole no index names, left for
// gc). The caller still ends r.
func (w *packWriter) commitRecord(r *record, k key, h mh.Multihash) bool {
	size := len(r.b) - recordHead - len(h)
	if !w.claim(r.st.p, k, r.off, size) {
		return false
	}
	binary.LittleEndian.PutUint32(r.b, uint32(size))
	r.b[4] = byte(len(h))
	copy(r.b[recordHead:], h)
	return true
}

// endRecord gives r's stage back: it is written once every record and
// copy in it has ended. It never takes mu, which a pack being sealed
// holds while it waits for this.
func (w *packWriter) endRecord(r *record) {
	w.release(r.st)
}

func (w *packWriter) writeErr(p *openPack, err error) error {
	return fmt.Errorf("write pack %s: %w", filepath.Join(w.set.dir, p.name+".pack"), err)
}

func (p *openPack) failed() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// reserveLocked reserves rec bytes at the end of p's stages, handing each
// stage it fills on to be written once its copies are done.
//
// The bytes count in p whatever happens: a failure leaves the stage with
// part of a record, and nothing more goes into p. Where the failure is
// that no buffer came for the next stage, p is left with none being
// filled (st nil): the full one was handed off, and is its writer's.
func (w *packWriter) reserveLocked(p *openPack, rec int64, ss []segment) ([]segment, error) {
	p.size += rec
	for rec > 0 {
		st := p.st
		n := int(min(rec, int64(len(st.buf)-st.n)))
		st.copies.Add(1)
		st.refs.Add(1)
		ss = append(ss, segment{st: st, b: st.buf[st.n : st.n+n]})
		st.n += n
		rec -= int64(n)
		if st.n < len(st.buf) {
			continue
		}
		full := st
		if p.direct && !p.aioSet {
			p.aioSet = true
			if a := w.aioLocked(); a != nil {
				p.sw, p.aio = a, true
			}
		}
		p.writes.Add(1)
		p.flying.Add(1)
		// Not the last reference: the segment just reserved holds one.
		full.refs.Add(-1)
		buf, err := w.buffer(p)
		if err != nil {
			p.st = nil
			p.setErr(err)
			return ss, err
		}
		p.st = newStage(p, buf, full.start+int64(full.n))
		// Allocated up to the end of the new stage, so also full, which
		// the segment just reserved keeps from being written until now.
		w.allocate(p, p.st.start+stageSize)
	}
	return ss, nil
}

// release ends a segment's copy into a stage, writing the stage when that
// was its last reference (it is full and every copy into it done).
func (w *packWriter) release(st *stage) {
	st.copies.Done()
	if st.refs.Add(-1) == 0 {
		st.p.sw.submit(st)
	}
}

// written ends a full stage's write.
func (w *packWriter) written(st *stage, err error) {
	if err != nil {
		st.p.setErr(err)
	}
	w.free <- st.buf
	st.p.flying.Add(-1)
	st.p.writes.Done()
}

// allocate extends an aio pack's file to at least end bytes, allocated,
// so that its writes do not extend it: ext4 completes an O_DIRECT write
// past the end of the file inside io_submit. The pack is cut to its
// records when sealed; where fallocate fails, writes extend the file.
func (w *packWriter) allocate(p *openPack, end int64) {
	if !p.aio || p.noAlloc || end <= p.alloc {
		return
	}
	n := max(end-p.alloc, allocStep)
	if err := fallocate(p.fd, p.alloc, n); err != nil {
		p.noAlloc = true
		return
	}
	p.alloc += n
}

// waitWritesLocked waits until every stage of p handed off to be written
// has been written and ended, those still being copied into included:
// those sent to AIO are reaped here, the rest written by whoever completed
// them. Then nothing uses p's descriptor or those stages' buffers. It
// fails only where a reap fails, and the writer is lost (packWriter).
func (w *packWriter) waitWritesLocked(p *openPack) error {
	for p.aio && p.flying.Load() > 0 {
		if err := w.reapLocked(p); err != nil {
			return err
		}
	}
	p.writes.Wait()
	return nil
}

func (p *openPack) setErr(err error) {
	p.errMu.Lock()
	p.err = cmp.Or(p.err, err)
	p.errMu.Unlock()
}

// writeOutLocked puts every record of p in the file: the stage being
// filled is written up to its last whole block plus that block padded
// with zeros, which stays in the stage to be written again when it fills.
// Whatever fails, it returns only once every stage handed off is written
// (waitWritesLocked), so the caller may let p's descriptor go.
func (w *packWriter) writeOutLocked(p *openPack) error {
	if st := p.st; st != nil {
		st.copies.Wait()
		if st.n > 0 && p.failed() == nil {
			padded := (st.n + dioAlign - 1) &^ (dioAlign - 1)
			clear(st.buf[st.n:padded])
			if err := pwriteAll(p.fd, st.buf[:padded], st.start); err != nil {
				p.setErr(err)
			} else {
				whole := st.n &^ (dioAlign - 1)
				copy(st.buf, st.buf[whole:st.n])
				st.start += int64(whole)
				st.n -= whole
				w.allocate(p, st.start+stageSize)
			}
		}
	}
	if err := w.waitWritesLocked(p); err != nil {
		p.setErr(err)
	}
	if err := p.failed(); err != nil {
		return w.writeErr(p, err)
	}
	p.onDisk = p.size
	return nil
}

// readable makes sure the record at l, if the open pack holds it, is in
// the file, for a read of a block this run wrote.
func (w *packWriter) readable(l loc) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p := w.cur; p != nil && p.name == l.pack && int64(l.off)+recordHead+maxMHLen+int64(l.size) > p.onDisk {
		return w.writeOutLocked(p)
	}
	return nil
}

// sealLocked finishes a pack no more blocks go into: its records written
// out, the padding cut off, and its idx written as .idx.new. Failed or
// not, the pack is let go: its stage's buffer back in free, its
// descriptor closed after its last write.
func (w *packWriter) sealLocked(p *openPack) error {
	err := w.writeOutLocked(p)
	w.releaseStageLocked(p)
	if err == nil {
		err = p.f.Truncate(p.size)
		if err == nil && !w.fast {
			err = p.f.Sync() // no syncfs at the flush
		}
		if err != nil {
			err = w.writeErr(p, err)
		}
	}
	w.closeDirectLocked(p)
	if err != nil {
		return err
	}
	p.entMu.Lock()
	ents := p.ents
	p.ents = nil
	p.entMu.Unlock()
	if len(ents) == 0 {
		w.set.mu.Lock()
		w.set.dropLocked(p.name)
		w.set.mu.Unlock()
		return os.Remove(filepath.Join(w.set.dir, p.name+".pack"))
	}
	sortEntries(ents)
	path := filepath.Join(w.set.dir, p.name+".idx.new")
	iw, err := newIdxWriter(path, []string{p.name})
	if err != nil {
		return fmt.Errorf("write index %s: %w", path, err)
	}
	for _, e := range ents {
		iw.add(e.key, loc{pack: p.name, off: e.off, size: e.size})
	}
	if err := iw.finish(!w.fast); err != nil {
		return err
	}
	x, err := loadIdx(path)
	if err != nil {
		return err
	}
	w.set.add(x)
	w.pmu.Lock()
	for _, e := range ents {
		if w.pending[e.key].pack == p.name {
			delete(w.pending, e.key)
		}
	}
	w.pmu.Unlock()
	w.unnamed = append(w.unnamed, x.name)
	return nil
}

// maxIdx is how many indexes a flush leaves before merging them into one:
// a lookup reads one per idx whose Bloom filter lets it through.
const maxIdx = 8

// flush makes every block put so far durable and visible to readers: the
// open pack is sealed, one syncfs(2) writes packs and indexes (without
// the fast paths, each was fsynced when sealed, and their directory is),
// and the indexes are named. If that leaves more than maxIdx, they are
// merged.
func (w *packWriter) flush() error {
	return w.sync(true)
}

func (w *packWriter) sync(merge bool) error {
	w.mu.Lock()
	if p := w.cur; p != nil {
		w.cur = nil
		if err := w.sealLocked(p); err != nil {
			w.mu.Unlock()
			return err
		}
	}
	names := w.unnamed
	w.unnamed = nil
	w.dropAIOLocked()
	w.mu.Unlock()
	if len(names) == 0 {
		return nil
	}
	if err := w.syncSealed(); err != nil {
		return err
	}
	for _, n := range names {
		final := strings.TrimSuffix(n, ".new")
		if err := os.Rename(filepath.Join(w.set.dir, n), filepath.Join(w.set.dir, final)); err != nil {
			return fmt.Errorf("name index: %w", err)
		}
		w.set.mu.Lock()
		x := w.set.idx[n]
		delete(w.set.idx, n)
		x.name = final
		w.set.idx[final] = x
		w.set.mu.Unlock()
	}
	if err := syncDir(w.set.dir); err != nil {
		return err
	}
	w.set.mu.RLock()
	n := len(w.set.idx)
	w.set.mu.RUnlock()
	if merge && n > maxIdx {
		return w.compact(nil, nil)
	}
	return nil
}

// compact replaces every idx by one holding the entries keep accepts (all
// when nil), each key once, leaving out the packs in drop. Only named,
// durable indexes are merged: flush first. The new idx is durable before
// the old ones go, and they are gone (durably) before the caller deletes
// any dropped pack.
func (w *packWriter) compact(keep func(entry, string) bool, drop map[string]bool) error {
	xs := w.set.sorted()
	var packs []string
	seen := map[string]bool{}
	for _, x := range xs {
		if strings.HasSuffix(x.name, ".new") {
			return fmt.Errorf("compact %s: index %s not yet durable", w.set.dir, x.name)
		}
		for _, p := range x.packs {
			if !seen[p] && !drop[p] {
				seen[p] = true
				packs = append(packs, p)
			}
		}
	}
	slices.Sort(packs)
	name := randomName() + ".idx"
	tmp := filepath.Join(w.set.dir, name+".tmp")
	iw, err := newIdxWriter(tmp, packs)
	if err != nil {
		return fmt.Errorf("write index %s: %w", tmp, err)
	}
	err = mergeEntries(xs, func(e entry, pack string) {
		if !drop[pack] && (keep == nil || keep(e, pack)) {
			iw.add(e.key, loc{pack: pack, off: e.off, size: e.size})
		}
	})
	if err != nil {
		iw.f.Close()
		os.Remove(tmp)
		return err
	}
	if err := iw.finish(true); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(w.set.dir, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("name index: %w", err)
	}
	x, err := loadIdx(filepath.Join(w.set.dir, name))
	if err != nil {
		return err
	}
	if err := syncDir(w.set.dir); err != nil {
		return err
	}
	w.set.mu.Lock()
	for _, old := range xs {
		old.f.Close()
		delete(w.set.idx, old.name)
	}
	w.set.idx[x.name] = x
	w.set.mu.Unlock()
	for _, old := range xs {
		if err := os.Remove(filepath.Join(w.set.dir, old.name)); err != nil {
			return fmt.Errorf("remove index: %w", err)
		}
	}
	return syncDir(w.set.dir)
}

// mergeEntries calls fn for the entries of xs in key order (a key held
// by several indexes comes once per index, adjacent).
func mergeEntries(xs []*idxFile, fn func(entry, string)) error {
	var cs []*cursor
	for _, x := range xs {
		c := newCursor(x)
		if c.next() {
			cs = append(cs, c)
		}
		if c.err != nil {
			return c.err
		}
	}
	for len(cs) > 0 {
		m := 0
		for i := 1; i < len(cs); i++ {
			if string(cs[i].e.key[:]) < string(cs[m].e.key[:]) {
				m = i
			}
		}
		fn(cs[m].e, cs[m].x.packs[cs[m].e.pack])
		if !cs[m].next() {
			if cs[m].err != nil {
				return cs[m].err
			}
			cs = slices.Delete(cs, m, m+1)
		}
	}
	return nil
}

// cursor reads an idx's entries in order.
type cursor struct {
	x    *idxFile
	r    *bufio.Reader
	left int
	e    entry
	err  error
}

func newCursor(x *idxFile) *cursor {
	return &cursor{x: x, left: x.count, r: bufio.NewReaderSize(io.NewSectionReader(x.f, x.entries, int64(x.count)*entrySize), 1<<16)}
}

func (c *cursor) next() bool {
	if c.left == 0 {
		return false
	}
	var b [entrySize]byte
	if _, err := io.ReadFull(c.r, b[:]); err != nil {
		c.err = fmt.Errorf("read index %s: %w", c.x.name, err)
		return false
	}
	c.left--
	c.e = decodeIdxEntry(b[:])
	return true
}

// recover clears what a run that did not finish left: indexes not yet
// named, temporary files, and packs no idx names. Only the lock holder
// may call it.
func (w *packWriter) recover() error {
	des, err := os.ReadDir(w.set.dir)
	if err != nil {
		return err
	}
	for _, d := range des {
		if n := d.Name(); strings.HasSuffix(n, ".new") || strings.HasSuffix(n, ".tmp") {
			if err := os.Remove(filepath.Join(w.set.dir, n)); err != nil {
				return err
			}
		}
	}
	if _, err := w.set.load(); err != nil {
		return err
	}
	w.set.mu.RLock()
	used := w.set.packNamesLocked()
	w.set.mu.RUnlock()
	packs, err := listSuffix(w.set.dir, ".pack")
	if err != nil {
		return err
	}
	for _, n := range packs {
		if !used[strings.TrimSuffix(n, ".pack")] {
			if err := os.Remove(filepath.Join(w.set.dir, n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// syncSealed makes the packs and indexes sealed since the last flush
// durable, with their names in the directory: one syncfs(2) where fast;
// without it each was fsynced when sealed, and the directory is left.
func (w *packWriter) syncSealed() error {
	if !w.fast {
		return syncDir(w.set.dir)
	}
	d, err := os.Open(w.set.dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", w.set.dir, err)
	}
	defer d.Close()
	if err := syncFS(d); err != nil {
		return fmt.Errorf("sync %s: %w", w.set.dir, err)
	}
	return nil
}

// syncDir fsyncs the directory dir.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
