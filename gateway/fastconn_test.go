package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

// serveCounting runs Serve's server (run) over s with browse on, its
// net/http handler counting the requests it answers; it returns the
// address and the count.
func serveCounting(t *testing.T, s *blockstore.Store, opts Options) (string, *atomic.Int64) {
	t.Helper()
	opts.Browse = true
	opts = opts.withDefaults()
	h, fs, err := build(s.Blockstore(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if fs == nil {
		t.Fatal("no fast loop over the store's blocks with browse on")
	}
	var byNetHTTP atomic.Int64
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		byNetHTTP.Add(1)
		h.ServeHTTP(w, r)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, limitListener(l, opts.MaxConnections), counted, fs, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return l.Addr().String(), &byNetHTTP
}

// exchange sends each request of reqs on one connection to addr (all in
// one write when pipelined, else each after the previous answer) and
// returns the answers as sent, Date's value left out, and whether the
// server closed the connection after them.
func exchange(t *testing.T, addr string, reqs []string, pipelined bool) ([]string, bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	if pipelined {
		if _, err := io.WriteString(conn, strings.Join(reqs, "")); err != nil {
			t.Fatal(err)
		}
	}
	var answers []string
	for _, req := range reqs {
		if !pipelined {
			if _, err := io.WriteString(conn, req); err != nil {
				t.Fatal(err)
			}
		}
		a, err := readAnswer(br, strings.HasPrefix(req, "HEAD "))
		if err != nil {
			break // closed: the answers so far are compared
		}
		answers = append(answers, a)
	}
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err = br.ReadByte()
	var ne net.Error
	return answers, !(errors.As(err, &ne) && ne.Timeout())
}

// readAnswer reads one response as sent: the head with Date's value
// blanked, and the body by its Content-Length, its chunks, or to the
// end of the connection.
func readAnswer(br *bufio.Reader, head bool) (string, error) {
	var b strings.Builder
	length, chunked := int64(-1), false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		switch k, v, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ": "); k {
		case "Date":
			line = "Date: -\r\n"
		case "Content-Length":
			length, _ = strconv.ParseInt(v, 10, 64)
		case "Transfer-Encoding":
			chunked = v == "chunked"
		}
		b.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	status := b.String()[len("HTTP/1.1 "):][:3]
	switch {
	case head || status == "304" || status == "204" || strings.HasPrefix(status, "1"):
	case length >= 0:
		body := make([]byte, length)
		if _, err := io.ReadFull(br, body); err != nil {
			return "", err
		}
		b.Write(body)
	case chunked:
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return "", err
			}
			b.WriteString(line)
			if line == "\r\n" || line == "0\r\n" {
				if line == "0\r\n" {
					end, err := br.ReadString('\n')
					if err != nil {
						return "", err
					}
					b.WriteString(end)
					return b.String(), nil
				}
				continue
			}
		}
	default:
		rest, err := io.ReadAll(br)
		if err != nil {
			return "", err
		}
		b.Write(rest)
	}
	return b.String(), nil
}

// TestFastLoopAnswersAsNetHTTP: over one connection, the fast loop
// answers the plain GETs and HEADs of files it takes, and hands the
// connection to net/http at the first request it does not, which then
// answers that one and every later one; every answer, byte for byte
// (Date's value aside), and whether the connection stays open, is what
// the server without the fast loop (net/http's alone) gives. Requests
// one after another and pipelined; with a body, chunked, Expect,
// HTTP/1.0, Connection: close, malformed, oversized headers.
func TestFastLoopAnswersAsNetHTTP(t *testing.T) {
	files := fastPathFiles()
	files["npm/@scope/pkg.tgz"] = randomBytes(21, 5000)
	s, root := syncTree(t, writeTree(t, files), profile.V1_2025, profile.Overrides{Chunker: ptr("size-1024"), MaxFileLinks: ptr(4)})
	addr, byNetHTTP := serveCounting(t, s, Options{})
	h, err := newHandler(s.Blockstore(), Options{Browse: true}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	ref := httptest.NewUnstartedServer(h)
	ref.Config.MaxHeaderBytes = maxHeaderBytes
	ref.Start()
	defer ref.Close()
	refAddr := strings.TrimPrefix(ref.URL, "http://")

	p := "/ipfs/" + root.String() + "/"
	get := func(path string, headers ...string) string {
		return "GET " + p + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + strings.Join(headers, "") + "\r\n"
	}
	head := "HEAD " + p + "small.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
	curl := get("a/b/c/deep.deb", "User-Agent: curl/8.5.0\r\n", "Accept: */*\r\n")
	big := get("big.bin", "Connection: keep-alive\r\n")
	for _, tc := range []struct {
		name string
		reqs []string
		fast int  // answered by the fast loop, the first ones
		bad  bool // the last answer is net/http's to a request it cannot read
	}{
		{"files", []string{curl, head, big, get("empty"), get("page"), get("odd/%C3%BCn%C3%AFc%C3%B6d%C3%A9.txt"), get("npm/%40scope/pkg.tgz")}, 7, false},
		{"then a directory", []string{curl, head, get("a/b"), curl, head}, 2, false},
		{"then a range", []string{curl, get("long-text", "Range: bytes=10-99\r\n"), curl}, 1, false},
		{"then a missing name", []string{curl, get("nope"), curl}, 1, false},
		{"then a query", []string{curl, get("small.txt?format=raw"), curl}, 1, false},
		{"then a format", []string{curl, get("small.txt", "Accept: application/vnd.ipld.car\r\n"), curl}, 1, false},
		{"then a conditional", []string{curl, get("small.txt", "If-None-Match: \"x\"\r\n"), curl}, 1, false},
		{"then an escaped slash", []string{curl, get("a%2Fb/c/deep.deb"), curl}, 1, false},
		{"then unclean", []string{curl, get("a/../small.txt"), curl}, 1, false},
		{"then another method", []string{curl, "OPTIONS " + p + "small.txt HTTP/1.1\r\nHost: x\r\n\r\n", curl}, 1, false},
		{"then not /ipfs/", []string{curl, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", curl}, 1, false},
		{"a body", []string{get("small.txt", "Content-Length: 5\r\n") + "hello", curl}, 0, false},
		{"chunked", []string{get("small.txt", "Transfer-Encoding: chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n", curl}, 0, false},
		{"expect", []string{get("small.txt", "Expect: 100-continue\r\n", "Content-Length: 0\r\n"), curl}, 0, false},
		{"upgrade", []string{get("small.txt", "Connection: Upgrade\r\n", "Upgrade: websocket\r\n"), curl}, 0, false},
		{"HTTP/1.0", []string{"GET " + p + "small.txt HTTP/1.0\r\n\r\n", curl}, 0, false},
		{"HTTP/1.0 keep-alive", []string{"GET " + p + "small.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", curl}, 0, false},
		{"connection close", []string{curl, get("small.txt", "Connection: close\r\n"), curl}, 1, false},
		{"pragma", []string{get("small.txt", "Pragma: no-cache\r\n"), curl}, 2, false},
		{"no host", []string{"GET " + p + "small.txt HTTP/1.1\r\n\r\n", curl}, 0, true},
		{"two hosts", []string{get("small.txt", "Host: y\r\n"), curl}, 0, true},
		{"bad host", []string{"GET " + p + "small.txt HTTP/1.1\r\nHost: a b\r\n\r\n", curl}, 0, true},
		{"space in a name", []string{get("small.txt", "Bad Name: x\r\n"), curl}, 0, true},
		{"no colon", []string{get("small.txt", "NoColon\r\n"), curl}, 0, true},
		{"folded", []string{get("small.txt", "X-A: b\r\n", " c\r\n"), curl}, 0, false},
		{"control in a value", []string{get("small.txt", "X-A: b\x01c\r\n"), curl}, 0, true},
		{"bare LF", []string{"GET " + p + "small.txt HTTP/1.1\nHost: x\n\n", curl}, 0, false},
		{"lower-case method", []string{"get " + p + "small.txt HTTP/1.1\r\nHost: x\r\n\r\n", curl}, 0, false},
		{"bad version", []string{"GET " + p + "small.txt HTTP/1.x\r\nHost: x\r\n\r\n", curl}, 0, true},
		{"two spaces", []string{"GET  " + p + "small.txt HTTP/1.1\r\nHost: x\r\n\r\n", curl}, 0, true},
		{"bad escape", []string{curl, get("small%zz.txt"), curl}, 1, true},
		{"big headers", []string{curl, get("small.txt", "X-Big: "+strings.Repeat("b", 60<<10)+"\r\n"), curl}, 3, false},
		{"oversized headers", []string{curl, get("small.txt", "X-Big: "+strings.Repeat("b", 80<<10)+"\r\n"), curl}, 1, true},
	} {
		for _, pipelined := range []bool{false, true} {
			name := tc.name
			if pipelined {
				name += ", pipelined"
			}
			t.Run(name, func(t *testing.T) {
				before := byNetHTTP.Load()
				got, gotClosed := exchange(t, addr, tc.reqs, pipelined)
				want, wantClosed := exchange(t, refAddr, tc.reqs, pipelined)
				if len(got) != len(want) || gotClosed != wantClosed {
					t.Fatalf("%d answers (closed %v), net/http's %d (closed %v)", len(got), gotClosed, len(want), wantClosed)
				}
				for i := range got {
					if got[i] != want[i] {
						t.Errorf("answer %d:\n%.600q\nnet/http's:\n%.600q", i, got[i], want[i])
					}
				}
				handler := len(want) - tc.fast
				if tc.bad {
					handler--
				}
				if n := byNetHTTP.Load() - before; int(n) != handler {
					t.Errorf("net/http's handler answered %d of %d, want %d (the fast loop %d)", n, len(want), handler, tc.fast)
				}
			})
		}
	}
}

// fastLoopStore is a repository of small files for the fast loop's
// tests, and its root.
func fastLoopStore(t *testing.T) (*blockstore.Store, string) {
	t.Helper()
	s, root := syncTree(t, writeTree(t, map[string][]byte{"a.txt": []byte("a file\n"), "b.bin": randomBytes(3, 50_000)}), profile.V1_2025, profile.Overrides{})
	return s, "/ipfs/" + root.String() + "/"
}

// TestFastLoopTimeouts: a connection the fast loop serves is closed once
// it has waited IdleTimeout for its next request, or ReadHeaderTimeout
// for the rest of one, and not long before.
func TestFastLoopTimeouts(t *testing.T) {
	s, p := fastLoopStore(t)
	addr, byNetHTTP := serveCounting(t, s, Options{IdleTimeout: 300 * time.Millisecond, ReadHeaderTimeout: 300 * time.Millisecond})
	req := "GET " + p + "a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct {
		name  string
		first bool   // a request is sent and answered first
		after string // sent then
	}{
		{"idle", true, ""},
		{"part of a head", true, "GET " + p + "a.txt HTTP/1.1\r\n"},
		{"part of the first head", false, "GET " + p + "a.txt HTTP/1.1\r\nHost: x\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			if tc.first {
				io.WriteString(conn, req)
				if _, err := readAnswer(br, false); err != nil {
					t.Fatal(err)
				}
			}
			io.WriteString(conn, tc.after)
			start := time.Now()
			conn.SetReadDeadline(start.Add(5 * time.Second))
			_, err = br.ReadByte()
			if err != io.EOF {
				t.Fatalf("after %v: %v, want the connection closed", time.Since(start), err)
			}
			if took := time.Since(start); took < 200*time.Millisecond || took > 3*time.Second {
				t.Fatalf("closed after %v, timeout 300 ms", took)
			}
		})
	}
	if n := byNetHTTP.Load(); n != 0 {
		t.Fatalf("net/http answered %d requests, the fast loop none", n)
	}
}

// TestFastLoopShutdown: when the server stops, a connection idle in the
// fast loop is closed, one that is answering ends its answer first, and
// Serve returns.
func TestFastLoopShutdown(t *testing.T) {
	s, root := bigStore(t, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, s.Blockstore(), Options{Listen: "127.0.0.1:0", Browse: true}, func(a string) { addrc <- a })
	}()
	addr := <-addrc
	idle, ir := request(t, addr, "/ipfs/"+root.String()+"/f001")
	if _, err := readAnswer(ir, false); err != nil {
		t.Fatal(err)
	}
	// A client that reads its answer only after the stop.
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busy.(*net.TCPConn).SetReadBuffer(16 << 10)
	io.WriteString(busy, "GET /ipfs/"+root.String()+"/f000 HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(200 * time.Millisecond)
	cancel()
	idle.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := ir.ReadByte(); err != io.EOF {
		t.Fatalf("the idle connection after the stop: %v, want it closed", err)
	}
	br := bufio.NewReader(busy)
	a, err := readAnswer(br, false)
	if err != nil || !strings.HasPrefix(a, "HTTP/1.1 200 OK") || len(a) < 1<<20 {
		t.Fatalf("the answer in progress at the stop: %d bytes, %v", len(a), err)
	}
	busy.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("the busy connection after its answer: %v, want it closed", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second): // before the 5 s Shutdown gives
		t.Fatal("Serve did not return after the stop")
	}
}

// TestFastLoopLimit: the fast loop's requests and net/http's share the
// limit on requests at once: with a CAR download holding the one place,
// a plain GET of a file is answered 429, as net/http's limit answers it.
func TestFastLoopLimit(t *testing.T) {
	s, root := bigStore(t, 32)
	addr, byNetHTTP := serveCounting(t, s, Options{MaxRequests: 1})
	slow, r := request(t, addr, "/ipfs/"+root.String()+"?format=car")
	defer slow.Close()
	if resp, err := http.ReadResponse(r, nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("first request: %v %v", resp, err)
	}
	before := byNetHTTP.Load()
	resp, err := http.Get("http://" + addr + "/ipfs/" + root.String() + "/f000")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a file beyond the limit: %d, Retry-After %q; want 429", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if byNetHTTP.Load() != before+1 {
		t.Fatal("the 429 was not net/http's limit's")
	}
}
