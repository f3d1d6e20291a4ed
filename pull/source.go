package pull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bstore "github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	carv2 "github.com/ipld/go-car/v2"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
)

// MaxBlockSize is the largest block accepted from a source: 2 MiB, the
// limit of bitswap and of every IPFS implementation's importer.
const MaxBlockSize = 2 << 20

// ErrNotFound means no source has a block.
var ErrNotFound = errors.New("block not found")

// Source gives blocks by CID. Every block it returns has been checked to
// hash to its CID.
type Source interface {
	// Block fetches one block.
	Block(ctx context.Context, c cid.Cid) (blocks.Block, error)
	// CAR opens a stream of verified blocks under c in depth-first order,
	// in one round trip: with scope "entity" the UnixFS entity (a whole
	// file, or a directory with its HAMT shards), with "all" everything
	// under c. nil if the source has no such thing (the caller then asks
	// block by block).
	CAR(ctx context.Context, c cid.Cid, scope string) (Stream, error)
	// Counters reports what crossed from the source so far.
	Counters() Counters
}

// Stream is an open sequence of verified blocks.
type Stream interface {
	Next() (blocks.Block, error) // io.EOF at the end
	Close() error
}

// Counters are what a source has delivered.
type Counters struct {
	Bytes  int64 // payload bytes received (HTTP bodies, or blocks read)
	Blocks int64
	Wire   int64 // bytes on the TCP connections, both ways (HTTP only)
}

// verify checks that data hashes to c and returns it as a block.
func verify(c cid.Cid, data []byte) (blocks.Block, error) {
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		return nil, err
	}
	if err := blockstore.Verify(b); err != nil {
		return nil, err
	}
	return b, nil
}

// identity answers an identity CID from its own digest; ok is false for
// every other CID.
func identity(c cid.Cid) (blocks.Block, bool, error) {
	if c.Prefix().MhType != mh.IDENTITY {
		return nil, false, nil
	}
	dm, err := mh.Decode(c.Hash())
	if err != nil {
		return nil, true, err
	}
	b, err := blocks.NewBlockWithCid(dm.Digest, c)
	return b, true, err
}

// Store reads blocks from a local ipfs-sync repository (whose reader
// already verifies every block).
type Store struct {
	BS     bstore.Blockstore
	bytes  atomic.Int64
	blocks atomic.Int64
}

func (s *Store) Block(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	b, err := s.BS.Get(ctx, c)
	if err != nil {
		if errors.Is(err, blockstore.ErrUnavailable) {
			// A --nocopy repository's block whose file changed: the
			// message names the file.
			return nil, fmt.Errorf("%s: %w in the local store: %v", c, ErrNotFound, err)
		}
		if ipld.IsNotFound(err) {
			return nil, fmt.Errorf("%s: %w in the local store", c, ErrNotFound)
		}
		return nil, err
	}
	s.bytes.Add(int64(len(b.RawData())))
	s.blocks.Add(1)
	return b, nil
}

func (s *Store) CAR(context.Context, cid.Cid, string) (Stream, error) { return nil, nil }

func (s *Store) Counters() Counters {
	return Counters{Bytes: s.bytes.Load(), Blocks: s.blocks.Load()}
}

// Gateways fetches from one or more trustless HTTP gateways
// (https://specs.ipfs.tech/http-gateways/trustless-gateway/): raw blocks
// and CARs. Requests are spread over the gateways by CID; one that fails
// is skipped for a while and the next one is asked.
type Gateways struct {
	// ReadTimeout is how long a gateway may send nothing (no response,
	// then no byte of its body) before the request is given up and the
	// next gateway asked.
	ReadTimeout time.Duration

	urls   []string
	down   []atomic.Int64 // unix ns until which a gateway is skipped
	client *http.Client
	bytes  atomic.Int64
	blocks atomic.Int64
	wire   atomic.Int64
}

// downFor is how long a failing gateway is asked last.
const downFor = 10 * time.Second

// DefaultReadTimeout is Gateways.ReadTimeout unless set: a gateway still
// fetching a block from the network may take a while to answer, but one
// silent for a minute is not going to.
const DefaultReadTimeout = 60 * time.Second

// errStalled marks a gateway that went silent.
var errStalled = errors.New("gateway stalled")

// NewGateways checks the URLs (http or https, no path beyond /) and
// prepares a client that keeps enough connections to each open for
// parallel fetches.
func NewGateways(urls []string) (*Gateways, error) {
	g := &Gateways{down: make([]atomic.Int64, len(urls)), ReadTimeout: DefaultReadTimeout}
	for _, u := range urls {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("gateway %q: want http(s)://HOST[:PORT]", u)
		}
		g.urls = append(g.urls, strings.TrimRight(p.String(), "/"))
	}
	if len(g.urls) == 0 {
		return nil, errors.New("no gateway")
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	g.client = &http.Client{Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: c, n: &g.wire}, nil
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
	}}
	return g, nil
}

func (g *Gateways) Counters() Counters {
	return Counters{Bytes: g.bytes.Load(), Blocks: g.blocks.Load(), Wire: g.wire.Load()}
}

// order lists the gateways to ask for c: spread by CID, healthy first.
func (g *Gateways) order(c cid.Cid) []int {
	n := len(g.urls)
	h := c.Hash()
	start := 0
	if len(h) > 0 {
		start = int(h[len(h)-1]) % n
	}
	now := time.Now().UnixNano()
	var up, down []int
	for i := range n {
		k := (start + i) % n
		if g.down[k].Load() > now {
			down = append(down, k)
		} else {
			up = append(up, k)
		}
	}
	return append(up, down...)
}

// get sends one request. Its response's body gives up (errStalled) when
// the gateway sends nothing for ReadTimeout, and so does the wait for the
// response itself.
func (g *Gateways) get(ctx context.Context, i int, c cid.Cid, accept, query string, header ...string) (*http.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.urls[i]+"/ipfs/"+c.String()+query, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", accept)
	for k := 0; k+1 < len(header); k += 2 {
		req.Header.Set(header[k], header[k+1])
	}
	timeout := g.ReadTimeout
	if timeout <= 0 {
		timeout = DefaultReadTimeout
	}
	body := &idleBody{timeout: timeout, cancel: cancel}
	body.timer = time.AfterFunc(body.timeout, body.expire)
	resp, err := g.client.Do(req)
	body.timer.Stop()
	if err != nil {
		cancel()
		if body.fired.Load() {
			return nil, fmt.Errorf("%s: no response for %v: %w", g.urls[i], timeout, errStalled)
		}
		return nil, err
	}
	body.rc = resp.Body
	resp.Body = body
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		err := fmt.Errorf("%s: %s %s", g.urls[i], resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
			err = fmt.Errorf("%w (%v)", ErrNotFound, err)
		}
		return nil, err
	}
	return resp, nil
}

func (g *Gateways) fail(i int) { g.down[i].Store(time.Now().Add(downFor).UnixNano()) }

// Block GETs /ipfs/{cid}?format=raw from each gateway in turn until one
// answers with bytes that hash to c.
func (g *Gateways) Block(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	var errs []error
	for _, i := range g.order(c) {
		b, err := g.block(ctx, i, c)
		if err == nil {
			return b, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		g.fail(i)
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("block %s: %w", c, errors.Join(errs...))
}

func (g *Gateways) block(ctx context.Context, i int, c cid.Cid) (blocks.Block, error) {
	resp, err := g.get(ctx, i, c, "application/vnd.ipld.raw", "?format=raw")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBlockSize+1))
	g.bytes.Add(int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", g.urls[i], err)
	}
	if len(data) > MaxBlockSize {
		return nil, fmt.Errorf("%s: block %s is larger than %d bytes", g.urls[i], c, MaxBlockSize)
	}
	b, err := verify(c, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", g.urls[i], err)
	}
	g.blocks.Add(1)
	return b, nil
}

// Tail GETs the last n bytes of the raw block c, which is size bytes long
// (an HTTP Range request; trustless gateways serve raw blocks with
// http.ServeContent). A gateway that ignores the range sends the whole
// block, which is verified and returned as whole. Nothing in a tail can be
// verified alone: the caller completes the block and checks its hash.
func (g *Gateways) Tail(ctx context.Context, c cid.Cid, size, n int) (data []byte, whole bool, err error) {
	i := g.order(c)[0]
	resp, err := g.get(ctx, i, c, "application/vnd.ipld.raw", "?format=raw", "Range", fmt.Sprintf("bytes=%d-%d", size-n, size-1))
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	data, err = io.ReadAll(io.LimitReader(resp.Body, MaxBlockSize+1))
	g.bytes.Add(int64(len(data)))
	if err != nil {
		return nil, false, err
	}
	if resp.StatusCode == http.StatusOK {
		if _, err := verify(c, data); err != nil {
			return nil, false, fmt.Errorf("%s: %w", g.urls[i], err)
		}
		g.blocks.Add(1)
		return data, true, nil
	}
	if len(data) != n {
		return nil, false, fmt.Errorf("%s: asked for %d bytes of %s, got %d", g.urls[i], n, c, len(data))
	}
	return data, false, nil
}

// CAR GETs a CAR of the blocks under c with dag-scope=scope, depth-first,
// without duplicates. Blocks are verified as they are read; a stream that
// goes wrong midway is the caller's to abandon.
func (g *Gateways) CAR(ctx context.Context, c cid.Cid, scope string) (Stream, error) {
	var errs []error
	for _, i := range g.order(c) {
		resp, err := g.get(ctx, i, c, "application/vnd.ipld.car; version=1; order=dfs; dups=n", "?format=car&dag-scope="+scope)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			g.fail(i)
			errs = append(errs, err)
			continue
		}
		body := &countingReader{r: resp.Body, n: &g.bytes}
		br, err := carv2.NewBlockReader(body, carv2.WithTrustedCAR(true), carv2.MaxAllowedSectionSize(MaxBlockSize+256))
		if err != nil {
			resp.Body.Close()
			g.fail(i)
			errs = append(errs, fmt.Errorf("%s: CAR: %w", g.urls[i], err))
			continue
		}
		return &carStream{br: br, body: resp.Body.(*idleBody), counted: body, g: g, url: g.urls[i]}, nil
	}
	return nil, fmt.Errorf("CAR %s: %w", c, errors.Join(errs...))
}

type carStream struct {
	br      *carv2.BlockReader
	body    *idleBody
	counted io.Reader // body, counted
	g       *Gateways
	url     string
}

func (s *carStream) Next() (blocks.Block, error) {
	b, err := s.br.Next()
	if err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%s: CAR: %w", s.url, err)
	}
	// The reader was told the CAR is trusted so that each block is hashed
	// once, here.
	if err := blockstore.Verify(b); err != nil {
		return nil, fmt.Errorf("%s: %w", s.url, err)
	}
	s.g.blocks.Add(1)
	return b, nil
}

// A stream is closed once its reader has the blocks it wants, which is
// usually before the reader has seen the CAR's end: a few bytes a
// gateway has sent already. Close reads them, for a little while and a
// little way, so that the connection goes back to the pool rather than
// being closed (a new connection is a handshake, over TLS several round
// trips); a stream with more than that left is cut off, as before.
const (
	drainMax  = 64 << 10
	drainWait = 20 * time.Millisecond
)

func (s *carStream) Close() error {
	t := time.AfterFunc(drainWait, s.body.cancel)
	io.CopyN(io.Discard, s.counted, drainMax)
	t.Stop()
	return s.body.Close()
}

// idleBody is a response body that gives up when the sender goes silent:
// a Read that gets nothing for its timeout cancels the request. The timer
// runs only while a Read waits, so a reader that takes its time between
// reads (writing what it got to disk) is never cut off for that.
type idleBody struct {
	rc      io.ReadCloser
	timeout time.Duration
	cancel  context.CancelFunc
	timer   *time.Timer
	fired   atomic.Bool
}

func (b *idleBody) expire() {
	b.fired.Store(true)
	b.cancel()
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.timeout)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err != nil && b.fired.Load() {
		err = fmt.Errorf("no data for %v: %w", b.timeout, errStalled)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel()
	return err
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// countingConn counts the bytes of a connection both ways: what a
// benchmark calls bytes on the wire (headers and framing included).
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// onceErr keeps the first error of several goroutines.
type onceErr struct {
	mu  sync.Mutex
	err error
}

func (o *onceErr) set(err error) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err == nil {
		o.err = err
		return true
	}
	return false
}

func (o *onceErr) get() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}
