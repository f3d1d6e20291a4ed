package blockstore

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
)

// Linux native AIO (io_submit(2)) for the pack writer's O_DIRECT writes,
// because a stage written with pwrite(2) holds one of Go's Ps for the
// write's milliseconds (docs/benchmarks.md#decisions). Only an O_DIRECT
// write into allocated space is asynchronous (one that extends the file,
// or goes through the page cache, completes inside io_submit), so the
// writer allocates ahead (fallocate) and uses this for O_DIRECT packs only.
// Four system calls, so no library: gVisor's pkg/aio brings all of gVisor,
// github.com/traetox/goaio owns the file and its buffers.

// aioStages is the stageWriter of O_DIRECT packs: one AIO context, whose
// writes are ended by reap.
type aioStages struct {
	w      *packWriter
	ctx    aioCtx
	evs    [stageBuffers]aioEvent // for reap, under w.mu
	mu     sync.Mutex             // a leaf (lock order: packWriter)
	tag    uint64
	flying map[uint64]*stage // submitted, by tag
}

// newAIOStages makes an AIO context for w's stages; the kernel may refuse
// (io_setup: ENOSYS in some sandboxes, EAGAIN past aio-max-nr).
func newAIOStages(w *packWriter) (stageWriter, error) {
	c, err := aioSetup(stageBuffers)
	if err != nil {
		return nil, err
	}
	return &aioStages{w: w, ctx: c, flying: map[uint64]*stage{}}, nil
}

func (a *aioStages) submit(st *stage) {
	a.mu.Lock()
	a.tag++
	t := a.tag
	a.flying[t] = st
	a.mu.Unlock()
	if err := a.ctx.submit(st.p.fd, st.buf[:st.n], st.start, t); err != nil {
		a.mu.Lock()
		delete(a.flying, t)
		a.mu.Unlock()
		a.w.written(st, fmt.Errorf("io_submit: %w", err))
		return
	}
	a.w.stagesAIO.Add(1)
}

func (a *aioStages) reap() error {
	n, err := a.ctx.events(a.evs[:], false)
	if err == nil && n == 0 {
		n, err = a.ctx.events(a.evs[:], true)
	}
	if err != nil {
		return fmt.Errorf("io_getevents: %w", err)
	}
	for _, ev := range a.evs[:n] {
		a.mu.Lock()
		st := a.flying[ev.data]
		delete(a.flying, ev.data)
		a.mu.Unlock()
		var err error
		switch {
		case ev.res < 0:
			err = unix.Errno(-ev.res)
		case ev.res < int64(st.n):
			// The rest again, for the reason it stopped (ENOSPC).
			err = fsat.PwriteAll(st.p.fd, st.buf[ev.res:st.n], st.start+ev.res)
		}
		a.w.written(st, err)
	}
	return nil
}

// close destroys the context; the kernel waits for what is in flight.
func (a *aioStages) close() {
	a.ctx.destroy()
}

// aioCtx is an AIO context (io_setup); 0 is none.
type aioCtx uintptr

// aioIocb is struct iocb (linux/aio_abi.h, little-endian field order).
type aioIocb struct {
	data     uint64
	key      uint32
	rwFlags  int32
	opcode   uint16
	reqprio  int16
	fd       uint32
	buf      uint64
	nbytes   uint64
	offset   int64
	reserved uint64
	flags    uint32
	resfd    uint32
}

// aioEvent is struct io_event.
type aioEvent struct {
	data uint64
	obj  uint64
	res  int64
	res2 int64
}

const aioCmdPwrite = 1

func aioSetup(n int) (aioCtx, error) {
	var c aioCtx
	if _, _, e := unix.Syscall(unix.SYS_IO_SETUP, uintptr(n), uintptr(unsafe.Pointer(&c)), 0); e != 0 {
		return 0, e
	}
	return c, nil
}

// submit starts writing b at off in fd; the completion carries tag. b
// must stay mapped until then (stage buffers live outside the Go heap).
func (c aioCtx) submit(fd int, b []byte, off int64, tag uint64) error {
	cb := aioIocb{data: tag, opcode: aioCmdPwrite, fd: uint32(fd), buf: uint64(uintptr(unsafe.Pointer(&b[0]))), nbytes: uint64(len(b)), offset: off}
	cbs := [1]*aioIocb{&cb}
	for {
		n, _, e := unix.Syscall(unix.SYS_IO_SUBMIT, uintptr(c), 1, uintptr(unsafe.Pointer(&cbs[0])))
		switch {
		case e == unix.EINTR:
			continue
		case e != 0:
			return e
		case n != 1:
			return errors.New("io_submit took no request")
		}
		return nil
	}
}

// events fills evs with completed requests. Without wait it returns at
// once, from a raw system call that never gives up the P; with wait it
// blocks until at least one completes or a short while has passed (a
// failed submission completes nothing, and the caller looks again).
func (c aioCtx) events(evs []aioEvent, wait bool) (int, error) {
	for {
		var n uintptr
		var e unix.Errno
		if wait {
			ts := unix.Timespec{Nsec: 10e6}
			n, _, e = unix.Syscall6(unix.SYS_IO_GETEVENTS, uintptr(c), 1, uintptr(len(evs)), uintptr(unsafe.Pointer(&evs[0])), uintptr(unsafe.Pointer(&ts)), 0)
		} else {
			var ts unix.Timespec
			n, _, e = unix.RawSyscall6(unix.SYS_IO_GETEVENTS, uintptr(c), 0, uintptr(len(evs)), uintptr(unsafe.Pointer(&evs[0])), uintptr(unsafe.Pointer(&ts)), 0)
		}
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), nil
	}
}

func (c aioCtx) destroy() {
	unix.Syscall(unix.SYS_IO_DESTROY, uintptr(c), 0, 0)
}
