package blockstore

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	mh "github.com/multiformats/go-multihash"
	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fastpath"
	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
)

// packWriter appends blocks to new packs. Writers reserve their record's
// place under a lock and write it outside, so blocks from all cores go
// into one pack without waiting for each other's copies.
//
// Lock order, for every lock in the package: mu before pmu, refShard.mu,
// openPack.entMu, openPack.errMu, packSet.mu and aioStages.mu. Those six
// are leaves: none is held while another lock is taken, so no two of them
// are ever held together, and each is also taken without mu (readers take
// packSet.mu, pmu and refShard.mu alone). Writer.mu, Index.mu (and
// Index.commitMu, taken under it) and Index.idleMu are held apart from
// every other lock of the package. mu is the one lock held while waiting:
// for a stage's copies and writes, a free buffer, a reap. So a copy into a
// stage, its end, and the write of a full stage by the copier that ends it
// never take mu (a seal waits for them while it holds mu): only errMu and
// aioStages.mu, and the claims of reserve and commitRecord, pmu or a
// refShard.mu, and entMu.
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

	mu     sync.Mutex
	cur    *openPack
	clones clonePacks   // the pack of cloned records (reflink.go)
	pmu    sync.RWMutex // pending
	// What is written, not yet in an idx of the set: the copies, and the
	// first reference to each block. Apart, so that a reference's check
	// for a copy of its block (packStore.usable) looks among the few
	// copies of a --nocopy import (directories, inner nodes), not among
	// every leaf's reference.
	pending     map[key]loc
	pendingRefs [refShards]refShard
	// copied has the bit of each key in pending (copyBit), set before the
	// key goes in and cleared only with the whole map: a reference's check
	// for a copy of its block (pendingCopy) reads it without the lock and
	// skips the map when the bit is clear, as it nearly always is in a
	// --nocopy import. Behind the read lock, the two readers' checks and
	// claims made each other wait ~700 times an import, and each wait
	// left a core idle for ~60 µs while the runtime found the waiter again
	// (docs/benchmarks.md#decisions).
	copied  [copyBits / 64]atomic.Uint64
	unnamed []string    // this run's .idx.new files
	free    chan []byte // stage buffers not in use (nil: not mapped yet)
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
	f      *os.File // written only through stage buffers
	fd     int      // f's: read while f may be closing after its last write
	direct bool     // f is its own (O_DIRECT) descriptor, not the one reads use
	rf     *os.File // the descriptor reads use, through the page cache
	size   int64    // bytes of records appended
	st     *stage   // the stage being filled
	onDisk int64    // records below this offset are in the file
	// entMu, a leaf (lock order: packWriter), guards ents: a record
	// reserved under mu is indexed outside it.
	entMu sync.Mutex
	ents  []entry
	// Full stages are written by sw: AIO where chosen (direct packs, once
	// the first stage is full and the context could be made), else
	// pwrite(2) by whoever completes them.
	sw      stageWriter
	aio     bool           // sw is AIO: its writes end in reap, into allocated space
	aioSet  bool           // sw is chosen
	full    int            // stages filled (aioAfter), under the writer's mu
	writes  sync.WaitGroup // full stages not yet written
	flying  atomic.Int32   // the same, counted, for reaping
	alloc   int64          // bytes of the file allocated ahead, with aio
	noAlloc bool           // fallocate failed: writes extend the file

	errMu sync.Mutex // a leaf (lock order: packWriter)
	err   error      // the first failed write
}

func newPackWriter(set *packSet) *packWriter {
	w := &packWriter{set: set, limit: packMax, pending: map[key]loc{}, free: make(chan []byte, stageBuffers), fast: fastpath.On()}
	for i := range w.pendingRefs {
		w.pendingRefs[i].m = map[key]loc{}
	}
	for range stageBuffers {
		w.free <- nil // allocated when first taken
	}
	return w
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
	p := &openPack{name: name, f: rf, fd: int(rf.Fd()), rf: rf, sw: pwriteStages{w}}
	p.st = newStage(p, buf, 0)
	// Where O_DIRECT is refused, at open or (alignment) at the first
	// write, the same stages go through the page cache.
	if w.fast {
		if wf, err := openDirect(path); err == nil {
			if err := fsat.PwriteAll(int(wf.Fd()), buf[:dioAlign], 0); err == nil {
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

// put appends the block with multihash h and key k (keyOf(h), which the
// caller has for its lookup). The caller has checked the store does not
// hold it.
func (w *packWriter) put(k key, h mh.Multihash, data []byte) error {
	if len(h) > maxMHLen {
		return fmt.Errorf("multihash of %d bytes is too long to store", len(h))
	}
	rec := int64(recordHead + len(h) + len(data))
	var head [recordHead + maxMHLen]byte
	putRecordHead(head[:], h, len(data))
	n := len(h)

	var segs [3]segment
	ss, err := w.reserve(k, rec, kindBlock, len(data), xxh3.Hash(data), segs[:0])
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

// putRecordHead writes a record's head and multihash h into b, for data
// of size bytes.
func putRecordHead(b []byte, h mh.Multihash, size int) {
	binary.LittleEndian.PutUint32(b, uint32(size))
	b[4] = byte(len(h))
	copy(b[recordHead:], h)
}

// reserve places a record of rec bytes of kind for key k (a block of
// size bytes, whose xxh3 is sum) at the end of the open pack and returns its segments, each to be
// copied into and marked done. Nothing is reserved for a key this run
// already copied; references are written beside each other and before a
// copy (each file has its own, nocopy.go).
func (w *packWriter) reserve(k key, rec int64, kind uint8, size int, sum uint64, ss []segment) ([]segment, error) {
	if kind != kindRef { // a reference is indexed beside a pending one (claim)
		if _, ok := w.pendingCopy(k); ok {
			return ss, nil
		}
	}
	w.mu.Lock()
	p, err := w.packLocked(rec)
	if err != nil {
		w.mu.Unlock()
		return ss, err
	}
	off := p.size
	ss, err = w.reserveLocked(p, rec, ss)
	w.mu.Unlock()
	if err != nil {
		return ss, err
	}
	// Claimed off mu, which the other reader's next reservation waits
	// for, yet before the segments are released: a seal takes a pack's
	// entries only once every segment reserved in it is (idxAhead,
	// writeOutLocked). Put meanwhile, the place reserved stays a hole.
	w.claim(p, k, kind, off, size, sum)
	return ss, nil
}

// claim indexes the record of kind at off in p (a block of size bytes,
// whose xxh3 is sum) under key k,
// unless this run copied k already (references are indexed beside each
// other, and a copy beside them); it reports whether it did. The record
// may be written after: a read of it waits for the stage's copies.
func (w *packWriter) claim(p *openPack, k key, kind uint8, off int64, size int, sum uint64) bool {
	l := loc{pack: p.name, kind: kind, off: uint32(off), size: uint32(size), sum: sum}
	if kind != kindRef {
		w.pmu.Lock()
		if _, ok := w.pending[k]; ok {
			w.pmu.Unlock()
			return false
		}
		i := copyBit(k)
		w.copied[i/64].Or(1 << (i % 64))
		w.pending[k] = l
		w.pmu.Unlock()
	} else {
		sh := w.refShard(k)
		sh.mu.Lock()
		if _, ok := sh.m[k]; !ok {
			sh.m[k] = l
		}
		sh.mu.Unlock()
	}
	p.entMu.Lock()
	if len(p.ents) == cap(p.ents) {
		// Doubled: append grows a large slice by a quarter, and the
		// copies came to five times the entries of a --nocopy import.
		p.ents = slices.Grow(p.ents, max(len(p.ents), 1024))
	}
	p.ents = append(p.ents, entry{key: k, kind: kind, off: uint32(off), size: uint32(size), sum: sum})
	p.entMu.Unlock()
	return true
}

// pendingLoc is where this run wrote block k, a copy or a reference.
func (w *packWriter) pendingLoc(k key) (loc, bool) {
	if l, ok := w.pendingCopy(k); ok {
		return l, true
	}
	sh := w.refShard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	l, ok := sh.m[k]
	return l, ok
}

// refShards is how many parts pendingRefs is split into, by key, each
// under its own lock: every leaf of a --nocopy import is claimed there,
// from both readers at once, and under one lock with the copies their
// claims waited for each other ~180 times an import.
const refShards = 16

// refShard is a part of pendingRefs, a cache line of its own.
type refShard struct {
	mu sync.Mutex
	m  map[key]loc
	_  [64 - 16]byte
}

func (w *packWriter) refShard(k key) *refShard { return &w.pendingRefs[k[0]%refShards] }

// copyBits is the size of packWriter.copied: with the few thousand copies
// of a --nocopy import, about one reference in twenty finds its bit set
// by another key and looks in the map all the same.
const copyBits = 1 << 16

func copyBit(k key) uint32 { return uint32(binary.LittleEndian.Uint16(k[:2])) }

// clearCopied clears packWriter.copied, with pending emptied (under pmu).
func (w *packWriter) clearCopied() {
	for i := range w.copied {
		w.copied[i].Store(0)
	}
}

// pendingCopy is where this run wrote a copy of block k, if it did.
func (w *packWriter) pendingCopy(k key) (loc, bool) {
	if i := copyBit(k); w.copied[i/64].Load()&(1<<(i%64)) == 0 {
		return loc{}, false
	}
	w.pmu.RLock()
	defer w.pmu.RUnlock()
	l, ok := w.pending[k]
	return l, ok
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
	if !w.claim(r.st.p, k, kindBlock, r.off, size, xxh3.Hash(r.b[recordHead+len(h):])) {
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

// readable makes sure the record at l, if the open pack holds it, is in
// the file, for a read of a block this run wrote.
func (w *packWriter) readable(l loc) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p := w.cur; p != nil && p.name == l.pack && int64(l.off)+recordHead+maxMHLen+int64(l.size) > p.onDisk {
		return w.writeOutLocked(p, false)
	}
	return nil
}

func (w *packWriter) writeErr(p *openPack, err error) error {
	return fmt.Errorf("write pack %s: %w", filepath.Join(w.set.dir, p.name+".pack"), err)
}

func (p *openPack) failed() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

func (p *openPack) setErr(err error) {
	p.errMu.Lock()
	p.err = cmp.Or(p.err, err)
	p.errMu.Unlock()
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
