package blockstore

import "github.com/ipfs-sync/ipfs-sync/internal/fsat"

// stageWriter writes a pack's full stages to its file, each write ended
// by packWriter.written: pwriteStages' within submit, by the goroutine
// that completed the stage; AIO's (aio_linux.go) later, in a reap by
// whoever holds the writer's lock and next needs a buffer or waits for
// the pack's writes.
type stageWriter interface {
	// submit starts writing st.buf[:st.n] at st.start of st.p's file.
	submit(st *stage)
	// reap ends the writes that completed, first without waiting, then,
	// if none had, waiting a short while for one. Only a holder of the
	// packWriter's mu reaps.
	reap() error
	// close lets the writer go, once nothing of its is in flight.
	close()
}

// pwriteStages writes each stage with pwrite(2) there and then: the
// portable way, and Linux's where O_DIRECT or AIO is refused, or the fast
// paths are off (internal/fastpath).
type pwriteStages struct{ w *packWriter }

func (s pwriteStages) submit(st *stage) {
	s.w.stagesPwrite.Add(1)
	s.w.written(st, fsat.PwriteAll(st.p.fd, st.buf[:st.n], st.start))
}

// reap finds nothing: every write ended in its submit.
func (pwriteStages) reap() error { return nil }

func (pwriteStages) close() {}
