package gateway

import (
	"bytes"
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"
)

// fastServer serves each connection's plain GETs and HEADs of files by
// path itself, in a keep-alive loop of its own, and hands the connection
// to net/http's server at the first request it does not answer.
//
// Why: on the mirror workload (files of 43 KB on average, by path, over
// keep-alive connections) net/http's own work per request cost more CPU
// than the fast path's and more than nginx's whole server: a goroutine
// reading ahead for each request and the deadlines that stop it, header
// maps, response bookkeeping, wake-ups of the scheduler. Measured on 2
// cores with 4 curl clients, net/http sending a fixed 43 KB from memory
// took 117-178 ticks of CPU per 25,009 requests, a minimal keep-alive
// loop 72-84.
//
// The loop answers only what it fully understands: a request line GET
// or HEAD, an origin-form target of plain characters (no %-escape, no
// query) under /ipfs/, HTTP/1.1, one Host, well-formed header lines
// without a body, an Expect, an Upgrade or a Connection other than
// keep-alive; and then only what the fast path takes (eligible) and
// answers (fastPath.serve) while the limit on requests at once has room.
// Anything else, a malformed request too, goes to net/http with every
// byte read so far replayed, so every other answer is net/http's and
// boxo's, as before; the connection stays with net/http from then on.
type fastServer struct {
	fp      *fastPath
	sem     chan struct{} // limit's: requests at once, both paths
	cors    http.Header   // what the CORS wrapper sets on every response
	head    answerHead    // the head of a file's answer, with cors
	opts    Options
	handoff *handoff

	mu      gosync.Mutex
	conns   map[*fastConn]struct{}
	closing atomic.Bool
	wg      gosync.WaitGroup
}

// States of a fastConn, for Shutdown: only an idle connection is closed
// at once; an active one ends its response first.
const (
	connIdle int32 = iota
	connActive
	connClosed
)

type fastConn struct {
	c     *limitedConn
	state atomic.Int32
}

// serve accepts connections from l until it is closed and serves each
// in the fast loop.
func (fs *fastServer) serve(l net.Listener) error {
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if fs.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// As net/http's Serve: a failed accept (too many open files)
			// is retried after a pause that grows to a second.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Printf("http: Accept error: %v; retrying in %v", err, backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		fc := &fastConn{c: c.(*limitedConn)}
		fs.mu.Lock()
		if fs.closing.Load() {
			fs.mu.Unlock()
			c.Close()
			continue
		}
		fs.conns[fc] = struct{}{}
		fs.wg.Add(1)
		fs.mu.Unlock()
		go fs.loop(fc)
	}
}

// shutdown closes the idle connections and makes the active ones close
// after their response; it waits for them until ctx ends, then closes
// them all.
func (fs *fastServer) shutdown(ctx context.Context) {
	fs.mu.Lock()
	fs.closing.Store(true)
	for fc := range fs.conns {
		if fc.state.CompareAndSwap(connIdle, connClosed) {
			fc.c.Close()
		}
	}
	fs.mu.Unlock()
	done := make(chan struct{})
	go func() { fs.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		fs.mu.Lock()
		for fc := range fs.conns {
			fc.c.Close()
		}
		fs.mu.Unlock()
	}
}

func (fs *fastServer) forget(fc *fastConn) {
	fs.mu.Lock()
	delete(fs.conns, fc)
	fs.mu.Unlock()
	fs.wg.Done()
}

// loop serves fc's requests until one is left to net/http, the client
// closes, a timeout passes or the server shuts down.
func (fs *fastServer) loop(fc *fastConn) {
	defer fs.forget(fc)
	c := fc.c
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.LocalAddr())
	req := (&http.Request{
		URL: &url.URL{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Body: http.NoBody, RemoteAddr: c.RemoteAddr().String(),
	}).WithContext(ctx)
	sock := newSockIO(c.Conn)
	w := &fastWriter{conn: c, sock: sock, stall: fs.opts.StallTimeout, cors: fs.cors, answerHead: fs.head}
	buf := make([]byte, 0, 4<<10)
	for first := true; ; first = false {
		end, ok := 0, false
		if buf, end, ok = fs.readHead(c, sock, buf, first); end < 0 {
			fc.state.Store(connClosed)
			c.Close()
			return
		}
		if ok {
			ok = parseRequest(req, buf[:end])
		}
		if ok && eligible(req) {
			if !fc.state.CompareAndSwap(connIdle, connActive) {
				return // closed by shutdown
			}
			served, keep := fs.answer(w, req)
			if !keep {
				fc.state.Store(connClosed)
				c.Close()
				return
			}
			if served {
				buf = buf[:copy(buf, buf[end:])]
				fc.state.Store(connIdle)
				if fs.closing.Load() && fc.state.CompareAndSwap(connIdle, connClosed) {
					c.Close()
					return
				}
				continue
			}
			fc.state.Store(connIdle)
		}
		// net/http takes the connection as it is, the request read again
		// from its first byte; its own deadlines replace the loop's.
		if !fc.state.CompareAndSwap(connIdle, connClosed) {
			return
		}
		_ = c.SetDeadline(time.Time{})
		c.replay = buf
		fs.handoff.send(c)
		return
	}
}

// readHead reads until buf holds a request's head (its line and headers,
// through the blank line) and returns the head's end; false if what buf
// holds is not one the loop parses (a bare LF, more than maxHeaderBytes,
// past which net/http answers 431 after its own 4 KiB of slack),
// and an end below zero if the connection failed or timed out before a
// request, as net/http then closes it without an answer. Its deadlines
// are net/http's: IdleTimeout for the wait between requests, then
// ReadHeaderTimeout from the first byte of a request (from the accept
// for the first one); a request that arrives whole costs one deadline
// call, one already read none.
func (fs *fastServer) readHead(c *limitedConn, sock sockIO, buf []byte, first bool) ([]byte, int, bool) {
	headerDeadline, idle := first || len(buf) > 0, false
	for {
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return buf, i + 4, !bareLF(buf[:i+4])
		}
		if bareLF(buf) || len(buf) >= maxHeaderBytes {
			return buf, 0, false
		}
		switch {
		case len(buf) == 0 && !headerDeadline && !idle:
			_ = c.SetReadDeadline(time.Now().Add(fs.opts.IdleTimeout))
			idle = true
		case headerDeadline || idle && len(buf) > 0:
			_ = c.SetReadDeadline(time.Now().Add(fs.opts.ReadHeaderTimeout))
			headerDeadline, idle = false, false
		}
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), maxHeaderBytes-len(buf)))
		}
		n, err := sock.read(buf[len(buf):min(cap(buf), maxHeaderBytes)])
		buf = buf[:len(buf)+n]
		if err != nil && n == 0 {
			return buf, -1, false
		}
	}
}

// bareLF says whether b has a line that ends in LF alone, which net/http
// takes and the loop leaves to it.
func bareLF(b []byte) bool {
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		if i == 0 || b[i-1] != '\r' {
			return true
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// answer serves req with the fast path if the limit on requests at once
// has room and the fast path takes it; served says it did, keep that the
// connection may take the next request (false: a write failed, or the
// response was aborted part way).
func (fs *fastServer) answer(w *fastWriter, req *http.Request) (served, keep bool) {
	select {
	case fs.sem <- struct{}{}:
		defer func() { <-fs.sem }()
	default:
		return false, true // limit's 429, from net/http
	}
	w.reset(req.Method == http.MethodHead)
	defer func() {
		if p := recover(); p != nil {
			served, keep = true, false
			if p != http.ErrAbortHandler {
				// As net/http reports a handler's panic.
				const size = 64 << 10
				stack := make([]byte, size)
				stack = stack[:runtime.Stack(stack, false)]
				log.Printf("http: panic serving %v: %v\n%s", req.RemoteAddr, p, stack)
			}
		}
	}()
	if !fs.fp.serve(w, req) {
		return false, true
	}
	return true, w.finish() == nil
}

// parseRequest fills req from head, a request's line and headers ending
// in the blank line, and says whether it is one the loop serves (see
// fastServer); req is left unfinished when it is not.
func parseRequest(req *http.Request, head []byte) bool {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	method, line, ok1 := bytes.Cut(line, []byte(" "))
	target, proto, ok2 := bytes.Cut(line, []byte(" "))
	if !ok1 || !ok2 || string(proto) != "HTTP/1.1" || !plainTarget(target) {
		return false
	}
	switch string(method) {
	case http.MethodGet:
		req.Method = http.MethodGet
	case http.MethodHead:
		req.Method = http.MethodHead
	default:
		return false
	}
	if req.Header == nil {
		req.Header = make(http.Header, 8)
	}
	clear(req.Header)
	host := ""
	hosts := 0
	for {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !token(name) {
			return false // also a folded line, which starts with a space
		}
		value = bytes.Trim(value, " \t")
		if !fieldValue(value) {
			return false
		}
		switch key := canonicalKey(name); key {
		case "Host":
			host = string(value)
			hosts++
		case "Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "Trailer", "Te":
			return false
		case "Connection":
			if !strings.EqualFold(string(value), "keep-alive") {
				return false
			}
			req.Header[key] = append(req.Header[key], string(value))
		default:
			req.Header[key] = append(req.Header[key], string(value))
		}
	}
	if hosts != 1 || !plainHost(host) {
		return false
	}
	// As net/http's request reader (fixPragmaCacheControl).
	if p := req.Header["Pragma"]; len(p) > 0 && p[0] == "no-cache" {
		if _, ok := req.Header["Cache-Control"]; !ok {
			req.Header["Cache-Control"] = []string{"no-cache"}
		}
	}
	req.Host = host
	req.RequestURI = string(target)
	if bytes.IndexByte(target, '%') < 0 {
		*req.URL = url.URL{Path: req.RequestURI}
		return true
	}
	// A name with %-escapes (npm's @scope/ directories) is decoded as
	// net/http decodes it.
	u, err := url.ParseRequestURI(req.RequestURI)
	if err != nil {
		return false
	}
	*req.URL = *u
	return true
}

// plainTarget says whether t is an origin-form target under /ipfs/ whose
// path net/http would take with nothing but its %-escapes decoded: RFC
// 3986's unreserved and sub-delims characters, ':', '@', '/' and '%', no
// query or fragment, and no escaped '/', which would make a name of two.
func plainTarget(t []byte) bool {
	if !bytes.HasPrefix(t, []byte("/ipfs/")) {
		return false
	}
	for i, c := range t {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
		case c == '%':
			if i+2 < len(t) && t[i+1] == '2' && (t[i+2] == 'F' || t[i+2] == 'f') {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// plainHost says whether h is a Host of letters, digits, '.', '-', ':'
// and brackets (a name, an IPv4 or IPv6 address, a port), all of which
// net/http accepts.
func plainHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '-' || c == ':' || c == '[' || c == ']':
		default:
			return false
		}
	}
	return true
}

// token says whether b is a header name (RFC 9110's token).
func token(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// fieldValue says whether b is a header value net/http accepts: no
// control character but tab.
func fieldValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// canonicalKey is name in net/http's canonical form, without an
// allocation for the names curl and browsers send most.
func canonicalKey(name []byte) string {
	switch string(name) {
	case "Host", "host":
		return "Host"
	case "User-Agent", "user-agent":
		return "User-Agent"
	case "Accept", "accept":
		return "Accept"
	case "Connection", "connection":
		return "Connection"
	}
	return textproto.CanonicalMIMEHeaderKey(string(name))
}

// handoff is the listener net/http's server serves: the connections the
// fast loop leaves to it.
type handoff struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once gosync.Once
}

func newHandoff(addr net.Addr) *handoff {
	return &handoff{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// send gives c to net/http's server, or closes it if the server is done.
func (h *handoff) send(c net.Conn) {
	select {
	case h.ch <- c:
	case <-h.done:
		c.Close()
	}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoff) Addr() net.Addr { return h.addr }
