package gateway

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A client that asks for a big response and stops reading must not hold
// the handler: its write fails once the per-write deadline passes.
func TestStallGuardEndsStalledWrites(t *testing.T) {
	done := make(chan error, 1)
	srv := httptest.NewServer(guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 1<<20)
		for range 1024 { // far more than the socket buffers hold
			if _, err := w.Write(buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}), 200*time.Millisecond))
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil {
		t.Fatal(err)
	}
	// The client now reads nothing more.
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the handler wrote 1 GiB to a client that stopped reading")
		}
	case <-time.After(time.Minute):
		t.Fatal("the handler is still blocked writing to a stalled client")
	}
}
