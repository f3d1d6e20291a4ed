package gateway

import (
	"io"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fastpath"
)

// rawSock reads and writes a connection of the fast loop with raw system
// calls on its non-blocking socket, which never wait: one that would is
// answered EAGAIN, and the poller waits as it does for net.Conn. net.Conn
// makes each call a blocking one to the scheduler (entersyscall), which
// wakes its monitor thread and, when the call runs long (a loopback write
// runs the reader's side of TCP too), hands the P to another thread: a
// fifth of serve's CPU time went to that (docs/benchmarks.md#decisions).
type rawSock struct{ rc syscall.RawConn }

// newRawSock is c's rawSock; nil if c is not a socket or the fast paths
// are off.
func newRawSock(c net.Conn) sockIO {
	sc, ok := c.(syscall.Conn)
	if !ok || !fastpath.On() {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return &rawSock{rc: rc}
}

// read is net.Conn's Read: the deadline set on the connection holds.
func (s *rawSock) read(p []byte) (int, error) {
	var n int
	var rerr error
	err := s.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
			switch e {
			case 0:
				if n = int(r); n == 0 && len(p) > 0 {
					rerr = io.EOF
				}
				return true
			case unix.EAGAIN:
				return false
			case unix.EINTR:
				continue
			}
			rerr = e
			return true
		}
	})
	if rerr != nil {
		return n, rerr
	}
	return n, err
}

func (s *rawSock) write2(a, b []byte) (int64, error) {
	bufs := [][]byte{a, b}
	var total int64
	var werr error
	var iov [2]unix.Iovec
	err := s.rc.Write(func(fd uintptr) bool {
		for {
			n := 0
			for _, b := range bufs {
				if len(b) > 0 {
					iov[n].Base = &b[0]
					iov[n].SetLen(len(b))
					n++
				}
			}
			if n == 0 {
				return true
			}
			r, _, e := unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(n))
			switch e {
			case 0:
			case unix.EAGAIN:
				return false
			case unix.EINTR:
				continue
			default:
				werr = e
				return true
			}
			total += int64(r)
			bufs = consumed(bufs, int(r))
		}
	})
	if werr != nil {
		return total, werr
	}
	return total, err
}

// consumed is bufs without their first n bytes.
func consumed(bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if len(bufs) > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}
