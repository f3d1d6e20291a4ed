package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
)

// bigStore is a repository holding a directory of n distinct 1 MiB raw
// blocks; it returns the store and the directory's CID.
func bigStore(t *testing.T, n int) (*blockstore.Store, cid.Cid) {
	t.Helper()
	ctx := context.Background()
	s, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	w := s.NewWriter(false)
	dir := mdag.NodeWithData(ft.FolderPBData())
	dir.SetCidBuilder(cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256})
	data := make([]byte, 1<<20)
	for i := range n {
		copy(data, fmt.Sprintf("block %d", i))
		c, err := cid.V1Builder{Codec: cid.Raw, MhType: mh.SHA2_256}.Sum(data)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := blocks.NewBlockWithCid(data, c)
		if err := w.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := dir.AddRawLink(fmt.Sprintf("f%03d", i), &ipld.Link{Cid: c, Size: uint64(len(data))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Put(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return s, dir.Cid()
}

// serve runs Serve with opts on a free loopback port until the test ends
// and returns its address.
func serve(t *testing.T, s *blockstore.Store, opts Options) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	opts.Listen = "127.0.0.1:0"
	go func() { done <- Serve(ctx, s.Blockstore(), opts, func(a string) { addr <- a }) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case a := <-addr:
		return a
	case err := <-done:
		t.Fatal(err)
	}
	return ""
}

// request sends a GET for path on a new connection and returns the
// connection and a reader of it; the response is not read.
func request(t *testing.T, addr, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

// TestMaxRequests: beyond MaxRequests requests at once, a request is
// answered 429 with Retry-After, at once; it is served once one ends.
func TestMaxRequests(t *testing.T) {
	s, root := bigStore(t, 32)
	addr := serve(t, s, Options{MaxRequests: 1, StallTimeout: time.Minute})
	car := "/ipfs/" + root.String() + "?format=car"
	// A client that asks for 32 MiB and reads nothing holds its request.
	slow, r := request(t, addr, car)
	if resp, err := http.ReadResponse(r, nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("first request: %v %v", resp, err)
	}
	resp, err := http.Get("http://" + addr + car)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a request beyond the limit: %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	slow.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/ipfs/" + root.String() + "?format=raw")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d 10 s after the slow client left", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMaxConnections: beyond MaxConnections open connections, a new one
// waits to be accepted, and is served once another closes.
func TestMaxConnections(t *testing.T) {
	s, root := bigStore(t, 1)
	addr := serve(t, s, Options{MaxConnections: 1, ReadHeaderTimeout: time.Minute, IdleTimeout: time.Minute, StallTimeout: time.Minute})
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // accepted: it holds the one place
	_, r := request(t, addr, "/ipfs/"+root.String()+"?format=raw")
	got := make(chan error, 1)
	go func() {
		resp, err := http.ReadResponse(r, nil)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("a second connection was served beside the first (MaxConnections 1): %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	idle.Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting connection was not served after the first closed")
	}
}

// TestReadHeaderTimeout: a connection that sends no request is closed
// after ReadHeaderTimeout.
func TestReadHeaderTimeout(t *testing.T) {
	s, _ := bigStore(t, 1)
	addr := serve(t, s, Options{ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: time.Minute, StallTimeout: time.Minute})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\n")); err != nil { // and never the rest
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the connection is still open after %v", time.Since(start))
	}
}

// TestSlowDownloadNotCut: a client that reads a large CAR slowly but
// steadily gets all of it, though the download lasts many times
// StallTimeout: only a write that makes no progress is cut. The server's
// send buffer is kept small, as it is on a slow path (on loopback the
// kernel grows it to megabytes, and a blocked write waits for half of it
// to drain).
func TestSlowDownloadNotCut(t *testing.T) {
	// 4 MiB at 1.6 MiB/s: 2.5 s, five times the stall timeout. A blocked
	// write waits for the client to read about 100 KiB, 60-80 ms at this
	// pace, so the timeout leaves room for a client that loses the CPU on
	// a loaded machine (at 800 KiB/s, 120-150 ms against 300 ms did not).
	const size = 4 << 20
	s, root := bigStore(t, size>>20)
	stall := 500 * time.Millisecond
	h, err := newHandler(s.Blockstore(), Options{StallTimeout: stall}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/ipfs/" + root.String() + "?format=car")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	buf := make([]byte, 32<<10) // 32 KiB per 20 ms: 1.6 MiB/s
	var n int64
	for {
		k, err := io.ReadFull(resp.Body, buf)
		n += int64(k)
		if err == io.EOF || err == io.ErrUnexpectedEOF && n > size {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes in %v: %v", n, time.Since(start), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took := time.Since(start); took < 4*stall || n < size {
		t.Fatalf("read %d bytes in %v: the test did not outlast the stall timeout", n, took)
	}
}

// smallBuffers gives each accepted connection a 64 KiB send buffer.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		err = c.(*net.TCPConn).SetWriteBuffer(64 << 10)
	}
	return c, err
}
