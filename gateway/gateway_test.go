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

// writesConn records the writes a connection is given.
type writesConn struct {
	net.Conn
	writes []string
}

func (c *writesConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

// A held connection holds a write of up to maxHeld bytes and sends it with
// the next one (one writev on a TCP connection), once; unhold sends what
// it still holds.
func TestConnHold(t *testing.T) {
	head, body, big := "head", string(make([]byte, 3*maxHeld)), string(make([]byte, maxHeld+1))
	for _, tc := range []struct {
		name   string
		hold   bool
		writes []string // given to the connection, then unhold
		held   []int    // writes sent after each of them
		want   []string
	}{
		{"not held", false, []string{head, body}, []int{1, 2}, []string{head, body}},
		{"head with the body", true, []string{head, body, head}, []int{0, 2, 3}, []string{head, body, head}},
		{"head alone", true, []string{head}, []int{0}, []string{head}},
		{"first write too big to hold", true, []string{big, head}, []int{1, 2}, []string{big, head}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &writesConn{}
			c := &limitedConn{Conn: rec}
			if tc.hold {
				c.hold()
			}
			for i, w := range tc.writes {
				if n, err := c.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("write %d: %d, %v", i, n, err)
				}
				if len(rec.writes) != tc.held[i] {
					t.Errorf("after write %d: %d writes sent, want %d", i, len(rec.writes), tc.held[i])
				}
			}
			if err := c.unhold(); err != nil {
				t.Fatal(err)
			}
			if len(rec.writes) != len(tc.want) {
				t.Fatalf("%d writes sent, want %d", len(rec.writes), len(tc.want))
			}
			for i := range tc.want {
				if rec.writes[i] != tc.want[i] {
					t.Errorf("write %d: %d bytes, want %d", i, len(rec.writes[i]), len(tc.want[i]))
				}
			}
		})
	}
}
