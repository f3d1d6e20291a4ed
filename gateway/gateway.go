// Package gateway owns serving the store over HTTP as an IPFS trustless
// gateway (boxo's gateway package): raw blocks and CAR responses that any
// IPFS client verifies by hash, and optionally deserialized (browser)
// responses with directory listings; and the server's limits.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	gosync "sync"
	"time"

	"github.com/ipfs/boxo/blockservice"
	bstore "github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/gateway"
	"github.com/ipfs/boxo/gateway/assets"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure the server. A zero limit or timeout takes the default
// below.
type Options struct {
	Listen string // host:port
	Browse bool   // deserialized responses (files, directory listings)

	// MaxConnections is the most connections open at once; more wait to
	// be accepted.
	MaxConnections int
	// MaxRequests is the most requests served at once; more are answered
	// 429 with Retry-After.
	MaxRequests int
	// ReadHeaderTimeout is how long a client has to send a request's
	// headers; IdleTimeout how long a keep-alive connection may wait for
	// the next request.
	ReadHeaderTimeout, IdleTimeout time.Duration
	// StallTimeout is the longest one write of a response may wait on the
	// client. It bounds a request's time without a whole-response limit,
	// which would cut slow but healthy downloads of big CARs off.
	StallTimeout time.Duration
}

// Defaults of Options.
const (
	DefaultMaxConnections    = 1024
	DefaultMaxRequests       = 512
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultStallTimeout      = time.Minute
)

func (o Options) withDefaults() Options {
	for _, d := range []struct {
		v   *int
		def int
	}{{&o.MaxConnections, DefaultMaxConnections}, {&o.MaxRequests, DefaultMaxRequests}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&o.ReadHeaderTimeout, DefaultReadHeaderTimeout}, {&o.IdleTimeout, DefaultIdleTimeout}, {&o.StallTimeout, DefaultStallTimeout}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	return o
}

// noRequestLimit stands for "no whole-request limit" in boxo, which
// otherwise ends every request after an hour, downloads in progress too;
// StallTimeout is what bounds a request here.
const noRequestLimit = 100 * 365 * 24 * time.Hour

// Handler serves /ipfs/ paths from bs. Every block read is checked by the
// store (blockstore's verify.go: the sum written with it), so a corrupt
// block is refused rather than sent. When bs is also a BlockReader (the
// store's is), UnixFS files are read from it directly (backend), and with
// browse a plain GET or HEAD of a file by path is answered in front of
// boxo's handler, as it would answer (fastPath); so is, browse or not,
// the CAR of a file a puller asks for (carPath). A root bs does not hold is a 404 (412 to Cache-Control: only-if-cached) before
// any byte; no error answer is cacheable, and a response that fails once
// its status is sent is cut off, never ended as if complete (see guard).
func Handler(bs bstore.Blockstore, browse bool) (http.Handler, error) {
	return newHandler(bs, Options{Browse: browse}.withDefaults())
}

func newHandler(bs bstore.Blockstore, opts Options) (http.Handler, error) {
	h, _, err := build(bs, opts)
	return h, err
}

// build makes Serve's handler and, when there is a fast path, the fast
// loop that answers its requests in front of net/http (fastServer),
// sharing the handler's limit on requests at once.
func build(bs bstore.Blockstore, opts Options) (http.Handler, *fastServer, error) {
	bsvc := blockservice.New(bs, nil) // offline: never asks the network
	blocksBackend, err := gateway.NewBlocksBackend(bsvc)
	if err != nil {
		return nil, nil, err
	}
	var be gateway.IPFSBackend = blocksBackend
	rd, isReader := bs.(BlockReader)
	var res *resolver
	if isReader {
		res = newResolver(rd)
		be = &backend{BlocksBackend: blocksBackend, rd: rd, res: res}
	}
	// boxo's limit on requests at once is lifted: limit counts the fast
	// path's requests as well as boxo's.
	gw := gateway.NewHandler(gateway.Config{
		DeserializedResponses: opts.Browse,
		MaxRequestDuration:    noRequestLimit,
		// A private registry: boxo registers its metrics once per registry
		// and tests start several servers in one process.
		MetricsRegistry: prometheus.NewRegistry(),
	}, be)
	ipfs := rootCheck(bs, gw)
	if isReader {
		ipfs = &carPath{rd: rd, next: ipfs}
	}
	var fp *fastPath
	if isReader && opts.Browse {
		fp = &fastPath{bs: bs, rd: rd, res: res, next: ipfs}
		ipfs = fp
	}
	sem := make(chan struct{}, opts.MaxRequests)
	mux := http.NewServeMux()
	mux.Handle("/ipfs/", limit(ipfs, sem))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "ipfs-sync serves /ipfs/{cid} (trustless gateway: ?format=raw or ?format=car)", http.StatusNotFound)
	})
	// Everything served is public and verifiable by its CID: any page may
	// read it, as from kubo's gateway (the same CORS headers, boxo's).
	corsHeaders := gateway.NewHeaders(nil).ApplyCors()
	h := guard(corsHeaders.Wrap(mux), opts.StallTimeout)
	if fp == nil {
		return h, nil, nil
	}
	cors := http.Header{}
	corsHeaders.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(headerOnly(cors), nil)
	fs := &fastServer{fp: fp, sem: sem, cors: cors, head: newAnswerHead(cors), opts: opts, conns: map[*fastConn]struct{}{}}
	return h, fs, nil
}

// headerOnly is a ResponseWriter that keeps only the headers set on it:
// those the CORS wrapper sets, for the fast loop's responses.
type headerOnly http.Header

func (h headerOnly) Header() http.Header       { return http.Header(h) }
func (headerOnly) Write(p []byte) (int, error) { return len(p), nil }
func (headerOnly) WriteHeader(int)             {}

// rootCheck answers 404 for a root the store does not hold. boxo starts a
// CAR response (status 200, cacheable for a year) before it reads the
// root, and the CAR it then cuts short is all a client or a CDN gets.
func rootCheck(bs bstore.Blockstore, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/ipfs/"), "/")
		c, err := cid.Decode(first)
		if err != nil || c.Prefix().MhType == mh.IDENTITY {
			h.ServeHTTP(w, r) // boxo's answers: 400, or the inline data
			return
		}
		has, err := bs.Has(r.Context(), c)
		switch {
		case err != nil:
			http.Error(w, "reading the store: "+err.Error(), http.StatusInternalServerError)
		case !has && r.Header.Get("Cache-Control") == "only-if-cached":
			// The gateway spec's answer to a client that wants only what
			// is at hand: as boxo answers for a root it cannot find locally.
			http.Error(w, c.String()+" is not in this repository", http.StatusPreconditionFailed)
		case !has:
			http.Error(w, c.String()+" is not in this repository", http.StatusNotFound)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// retryAfter is the Retry-After of a 429, boxo's.
const retryAfter = 60

// limit serves at most cap(sem) requests at once; more are answered 429
// with Retry-After at once, as boxo's limiter (MaxConcurrentRequests)
// answers. The fast loop takes its places from sem too.
func limit(h http.Handler, sem chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
			h.ServeHTTP(w, r)
		default:
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
			msg := fmt.Sprintf("Too many requests. Please retry after %d seconds.", retryAfter)
			if !strings.Contains(r.Header.Get("Accept"), "text/html") {
				http.Error(w, msg, http.StatusTooManyRequests)
				return
			}
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusTooManyRequests)
			err := assets.ErrorTemplate.Execute(w, assets.ErrorTemplateData{
				StatusCode: http.StatusTooManyRequests,
				StatusText: http.StatusText(http.StatusTooManyRequests),
				Error:      msg,
			})
			if err != nil {
				fmt.Fprintf(w, "error during body generation: %v", err)
			}
		}
	})
}

// Serve listens on opts.Listen and serves until ctx ends, then stops
// gracefully: idle connections close at once, answers in progress get
// five seconds. ready, if not nil, receives the address actually listened
// on. With a fast path, connections are read by its own loop first
// (fastServer), and reach net/http's server only for what it leaves.
func Serve(ctx context.Context, bs bstore.Blockstore, opts Options, ready func(addr string)) error {
	opts = opts.withDefaults()
	h, fs, err := build(bs, opts)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return err
	}
	l = limitListener(l, opts.MaxConnections)
	if ready != nil {
		ready(l.Addr().String())
	}
	return run(ctx, l, h, fs, opts)
}

// run serves l with h, through fs's loop when there is one, until ctx
// ends.
func run(ctx context.Context, l net.Listener, h http.Handler, fs *fastServer, opts Options) error {
	srv := &http.Server{
		Handler: h, ReadHeaderTimeout: opts.ReadHeaderTimeout, IdleTimeout: opts.IdleTimeout, MaxHeaderBytes: maxHeaderBytes,
		// The fast path finds its connection here to send a response's
		// head and body in one write (limitedConn.hold).
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
	if fs == nil {
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
	// Connections reach net/http's server through the fast loop, which
	// hands it those it does not serve itself.
	fs.handoff = newHandoff(l.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(fs.handoff) }()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		l.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		fs.shutdown(sctx)
		srv.Shutdown(sctx)
	}()
	err := fs.serve(l)
	<-stopped
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// maxHeaderBytes is the server's limit on a request's headers.
const maxHeaderBytes = 64 << 10

// guard makes every response safe to put behind a cache and bounded in
// time: each write gets a fresh deadline of stall (net/http clears it
// when the response ends); an error status never leaves with the
// immutable Cache-Control boxo sets before it knows the outcome; and a
// response whose stream failed after its status was sent (boxo reports it
// in the X-Stream-Error trailer) is aborted, so that neither the client
// nor a proxy sees it end as if complete.
func guard(h http.Handler, stall time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gw := &guardWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: stall}
		h.ServeHTTP(gw, r)
		if gw.status < 400 && w.Header().Get("X-Stream-Error") != "" {
			panic(http.ErrAbortHandler)
		}
	})
}

type guardWriter struct {
	http.ResponseWriter
	rc     *http.ResponseController
	stall  time.Duration
	status int // 0 until the status is sent
}

func (g *guardWriter) WriteHeader(code int) {
	if g.status == 0 && code >= 200 {
		g.status = code
		if code >= 400 {
			g.Header().Set("Cache-Control", "no-store")
		}
	}
	g.ResponseWriter.WriteHeader(code)
}

func (g *guardWriter) Write(p []byte) (int, error) {
	if g.status == 0 {
		g.WriteHeader(http.StatusOK)
	}
	_ = g.rc.SetWriteDeadline(time.Now().Add(g.stall))
	return g.ResponseWriter.Write(p)
}

// Flush keeps streaming responses streaming through the wrapper.
func (g *guardWriter) Flush() { _ = g.rc.Flush() }

// Unwrap lets http.ResponseController reach the connection (Flush).
func (g *guardWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// limitListener accepts at most n connections open at once; Accept waits
// for one to close, or for the listener to.
func limitListener(l net.Listener, n int) net.Listener {
	return &limited{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limited struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce gosync.Once
}

func (l *limited) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitedConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limited) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitedConn struct {
	net.Conn
	once    gosync.Once
	release func()

	// holding: the next write of at most maxHeld bytes is held in held
	// and sent with the one after it, in one writev (see hold).
	holding bool
	held    []byte

	// replay is what the fast loop read of a connection it hands to
	// net/http, read again before what follows.
	replay []byte
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if len(c.replay) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.replay)
	c.replay = c.replay[n:]
	return n, nil
}

// connKey is the request context's key of its connection (Serve's
// ConnContext).
type connKey struct{}

// maxHeld is the most a held write is: net/http's buffer of a
// connection's writes, which holds a response's head and its body's
// first bytes.
const maxHeld = 4 << 10

// hold makes the connection hold its next write, if it is no larger
// than maxHeld, and send it with the following one in one writev. net/http
// writes a response of more than its 4 KiB buffer as that buffer (the
// head and the body's first bytes) and then the rest: two writes, two
// TCP sends and two wake-ups of the client for what could be one.
// unhold ends it, sending what is still held.
func (c *limitedConn) hold() {
	c.holding = true
}

// holds says whether a write is held.
func (c *limitedConn) holds() bool { return len(c.held) > 0 }

// unhold ends hold, writing what it still holds (a response that ended
// with the held write); a failed write there is the response's failure.
func (c *limitedConn) unhold() error {
	c.holding = false
	if len(c.held) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.held)
	c.held = c.held[:0]
	return err
}

func (c *limitedConn) Write(p []byte) (int, error) {
	if !c.holding {
		return c.Conn.Write(p)
	}
	if len(c.held) == 0 && len(p) <= maxHeld {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	c.holding = false
	if len(c.held) == 0 {
		return c.Conn.Write(p)
	}
	bufs := net.Buffers{c.held, p}
	n, err := bufs.WriteTo(c.Conn)
	n -= int64(len(c.held))
	c.held = c.held[:0]
	return int(max(n, 0)), err
}

// CloseWrite lets net/http half-close a connection before it closes it
// after an error answer (431, 400), so that the client reads the answer
// rather than a reset for what it sent after.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
