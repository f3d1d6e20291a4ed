package blockstore

import (
	"cmp"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
)

// A pack is written in stage buffers of stageSize, at offsets and from
// addresses aligned to dioAlign, with O_DIRECT where the file system
// allows it (not tmpfs), because the kernel's copy of each block into the
// page cache was an import's largest cost after hashing. A record's place
// is reserved in a stage under the writer's lock and copied into outside
// it, so that one core's writer does not sleep on the other's copy. A
// full stage is written, while the next fills, by the last copier to end
// in it: submitted to AIO (aio_linux.go), else with pwrite(2) there and
// then (stagewriter.go). Measurements: docs/benchmarks.md#decisions.
const (
	dioAlign     = 4096
	stageSize    = 4 << 20
	stageBuffers = 4
	allocStep    = 64 << 20 // how far ahead a pack written with aio is allocated
	// aioAfter is the full stages a pack writes with pwrite(2) before it
	// takes AIO (aioLocked): each holds a P for a few milliseconds, fewer
	// in all than the AIO context's teardown.
	aioAfter = 4
)

// stage is one stage buffer of pack p while records are reserved in it:
// the bytes of the file from start.
type stage struct {
	p      *openPack
	buf    []byte
	start  int64 // file offset of buf[0], a multiple of dioAlign
	n      int   // bytes reserved
	copies sync.WaitGroup
	// refs is 1 while the stage fills, plus 1 per segment being copied:
	// whoever drops it to 0 writes the (full) stage, with sw, its pack's
	// stage writer when it filled (a pack takes AIO while its earlier
	// stages may still be copied into).
	refs atomic.Int32
	sw   stageWriter
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
		p.full++
		if p.direct && !p.aioSet && (p.full >= aioAfter || w.aio != nil) {
			p.aioSet = true
			if a := w.aioLocked(); a != nil {
				p.sw, p.aio = a, true
			}
		}
		full.sw = p.sw
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
		st.sw.submit(st)
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
		// Huge pages where the kernel has them: two faults fill a buffer
		// instead of one per 4 KiB page (2,048 of a --nocopy import's).
		hugePages(b)
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

// aioLocked is the writer's AIO stage writer, made the first time a
// direct pack has aioAfter full stages (a later pack takes it at its
// first): making its context is cheap, but
// destroying it (io_destroy, or the process's exit) waits ~30 ms for an
// RCU grace period, which the end of a run rarely covers, so a run that
// writes less than that makes none (a --nocopy import of a 1 GB tree
// writes ~11 MB of references), and a flush, after which a sync writes
// nothing more, lets it go (dropAIOLocked).
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

// writeOutLocked puts every record of p in the file: the stage being
// filled is written up to its last whole block plus that block padded
// with zeros, which stays in the stage to be written again when it fills.
// Whatever fails, it returns only once every stage handed off is written
// (waitWritesLocked), so the caller may let p's descriptor go.
//
// With last, p takes no more records: the block its records end in is
// written through the page cache instead, without the padding, so that
// the seal's cut to the records' end finds that block in the page cache.
// A cut inside a block written with O_DIRECT has the file system read the
// block back from the disk to zero its end: 0.2–6.5 ms of the seal that
// ends a run.
func (w *packWriter) writeOutLocked(p *openPack, last bool) error {
	if st := p.st; st != nil {
		st.copies.Wait()
		if last && p.direct && st.n > 0 && p.failed() == nil {
			whole := st.n &^ (dioAlign - 1)
			err := fsat.PwriteAll(p.fd, st.buf[:whole], st.start)
			if err == nil {
				err = fsat.PwriteAll(int(p.rf.Fd()), st.buf[whole:st.n], st.start+int64(whole))
			}
			if err != nil {
				p.setErr(err)
			}
		} else if st.n > 0 && p.failed() == nil {
			padded := (st.n + dioAlign - 1) &^ (dioAlign - 1)
			clear(st.buf[st.n:padded])
			if err := fsat.PwriteAll(p.fd, st.buf[:padded], st.start); err != nil {
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
