package gateway

import "net"

// sockIO is how the fast loop reads and writes a connection: raw system
// calls where it can (rawSock, Linux), net.Conn's elsewhere.
type sockIO interface {
	read(p []byte) (int, error)
	// write2 writes a then b, all of them unless it fails, in writev(2)
	// calls: net.Buffers' WriteTo.
	write2(a, b []byte) (int64, error)
}

func newSockIO(c net.Conn) sockIO {
	if s := newRawSock(c); s != nil {
		return s
	}
	return connIO{c}
}

type connIO struct{ c net.Conn }

func (c connIO) read(p []byte) (int, error) { return c.c.Read(p) }

func (c connIO) write2(a, b []byte) (int64, error) {
	bufs := net.Buffers{a, b}
	return bufs.WriteTo(c.c)
}
