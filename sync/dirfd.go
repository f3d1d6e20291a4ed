package sync

import (
	"context"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
)

// dirFD is a walked directory's descriptor, shared by its walk and by what
// the walk hands on: each file queued to be read in it, and each
// subdirectory given to another walker. Each opens its entry relative to
// it, never following a symlink there (chunker.OpenAt, diff.ReadDirAt), so
// a directory swapped for a symlink after the listing (pool/ -> /etc)
// leads nowhere outside the source: the entries opened are those of the
// directory listed. Opened by path, they were not.
//
// The descriptor is closed by the last of its holders to let it go.
type dirFD struct {
	fd   int
	refs atomic.Int32
	// lingers: its walk ended while files queued in it were still to be
	// read; it holds one of the run's linger slots until closed.
	lingers bool
	run     *run
}

func (r *run) newDirFD(fd int) *dirFD {
	d := &dirFD{fd: fd, run: r}
	d.refs.Store(1)
	return d
}

// at is the descriptor to open relative to; the walk's top, which has
// none, is opened by the path the user gave.
func (d *dirFD) at() int {
	if d == nil {
		return unix.AT_FDCWD
	}
	return d.fd
}

// hold takes a reference for something handed on; only a holder may.
func (d *dirFD) hold() {
	if d != nil {
		d.refs.Add(1)
	}
}

func (d *dirFD) release() {
	if d == nil || d.refs.Add(-1) != 0 {
		return
	}
	fsat.Close(d.fd)
	if d.lingers {
		<-d.run.linger
	}
}

// walked is the walk's release of its directory. Where files queued in it
// are still to be read, the descriptor lingers until they are, and a walk
// ending while the run's linger slots are all taken waits for one: the
// queue holds up to 256 files a worker, and one descriptor each, open past
// the process's limit (RLIMIT_NOFILE), made every later open fail.
func (d *dirFD) walked(ctx context.Context) {
	if d.refs.Load() > 1 {
		select {
		case d.run.linger <- struct{}{}:
			d.lingers = true
		case <-ctx.Done():
		}
	}
	d.release()
}

// lingerSlots is how many descriptors of directories whose walk ended may
// stay open for their queued files: a quarter of the descriptors the
// process may open (Go raises the soft limit to the hard one), at least
// 64, and no more than the queue can hold files.
func lingerSlots(queue int) int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || uint64(rl.Cur)/4 >= uint64(queue) {
		return queue
	}
	return max(64, int(rl.Cur/4))
}
