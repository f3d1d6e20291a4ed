package gateway

import (
	"context"
	"mime"
	"net/http"
	gopath "path"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gabriel-vasile/mimetype"
	bstore "github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multibase"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/internal/dagpb"
)

// fastPath answers the request a mirror client makes most: GET or HEAD of
// a UnixFS file by its path, /ipfs/{cid}/path/to/file, with none of what
// boxo's handler treats specially (see eligible). It sends the answer
// boxo's handler gives (status, every header, body: TestFastPathAnswersAsBoxo),
// without it: boxo's handler costs about 130 µs a request in path
// parsing, metrics and wrappers, and copies every byte through io.Copy's
// 32 KiB buffer. The file's bytes go out in large writes, each leaf's
// data region from the buffer the store read and checked it into, small
// leaves gathered to writeSize. Anything the fast path does not take, or
// that fails before the status is sent (a root the store lacks, a name
// not found, a directory, a symlink, a block that does not read), goes
// to next, boxo's answer; a block that fails once the status is sent
// aborts the response, as guard does.
type fastPath struct {
	bs   bstore.Blockstore
	rd   BlockReader
	res  *resolver
	next http.Handler

	// root is the last root a request named, decoded: a mirror's clients
	// name the same one again and again.
	root    atomic.Pointer[rootName]
	answers answers
}

// rootName is a root CID as a path names it, and the authority of its
// Ipfs-Uri header (the CID as CIDv1 in base32).
type rootName struct {
	text      string
	c         cid.Cid
	authority string
}

// Sizes of the fast path's writes and of the bytes boxo sniffs.
const (
	// writeSize is what small leaves are gathered to before a write;
	// a larger leaf is written as it is.
	writeSize = 256 << 10
	// sniffLen is mimetype's read limit (its default), the bytes
	// boxo's handler hands it to find a Content-Type.
	sniffLen = 3072
)

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, writeSize); return &b }}

func (fp *fastPath) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !eligible(r) || !fp.serve(w, r) {
		fp.next.ServeHTTP(w, r)
	}
}

// eligible says whether boxo's handler answers r as a plain UnixFS file
// response if the path leads to one: GET or HEAD of a clean /ipfs/ path
// (no empty, "." or ".." segment, no trailing slash: boxo cleans those
// and may redirect), no query (?format, ?filename, ?uri), and none of
// the headers that change boxo's answer: Range and the conditionals
// (If-*), an Accept naming a format boxo serves (its customResponseFormat),
// Cache-Control: only-if-cached, Service-Worker, X-Forwarded-Host.
func eligible(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		return false
	}
	p := r.URL.Path
	if !strings.HasPrefix(p, "/ipfs/") || len(p) == len("/ipfs/") || gopath.Clean(p) != p {
		return false
	}
	h := r.Header
	if changesAnswer(h) {
		return false
	}
	for _, v := range h["Accept"] {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			item = strings.TrimSpace(item)
			for _, prefix := range [...]string{"application/vnd.ipld", "application/vnd.ipfs", "application/x-tar", "application/json", "application/cbor"} {
				if strings.HasPrefix(item, prefix) {
					return false
				}
			}
		}
	}
	return true
}

// changesAnswer says whether h has a header that changes boxo's answer to
// a GET of an /ipfs/ path beyond what the fast and CAR paths write: Range
// and the conditionals (If-*), Cache-Control: only-if-cached,
// Service-Worker, X-Forwarded-Host.
func changesAnswer(h http.Header) bool {
	for _, k := range [...]string{"Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range", "Service-Worker", "X-Forwarded-Host"} {
		if _, ok := h[k]; ok {
			return true
		}
	}
	cc := h["Cache-Control"]
	return len(cc) > 0 && cc[0] == "only-if-cached"
}

// serve answers r if the fast path takes it, and says whether it did.
func (fp *fastPath) serve(w http.ResponseWriter, r *http.Request) bool {
	ctx := r.Context()
	rootText, rest, _ := strings.Cut(r.URL.Path[len("/ipfs/"):], "/")
	root, ok := fp.rootName(rootText)
	if !ok {
		return false
	}
	if has, err := fp.bs.Has(ctx, root.c); err != nil || !has {
		return false // rootCheck's answer
	}
	// The fast loop's answers are remembered; net/http's (a connection
	// the loop handed it) are built each time.
	fw, fast := w.(*fastWriter)
	var a *answer
	if fast {
		a = fp.answers.get(r.URL.Path)
	}
	f, u, roots, ok := fp.open(ctx, root, rest, a)
	if !ok {
		return false
	}
	defer f.Close()
	first, err := f.next()
	if err != nil && f.size > 0 {
		return false
	}
	out, first, ok := readHead(f, first)
	if !ok {
		return false
	}
	if a == nil {
		head := first
		if out != nil {
			head = *out
		}
		a = newAnswer(fp.res, roots, f.root, u, contentType(rest, head), f.size)
		if fast {
			fp.answers.put(r.URL.Path, a)
		}
	}
	if fast {
		fw.writeAnswer(a, root.authority, rest)
	} else {
		a.setHeaders(w.Header(), root.authority, rest)
		w.WriteHeader(http.StatusOK)
	}
	if r.Method == http.MethodHead {
		if out != nil {
			writeBufs.Put(out)
		}
		return true
	}
	c, ok := ctx.Value(connKey{}).(*limitedConn)
	if !ok || f.size <= maxHeld/2 {
		fp.send(w, f, out, first) // a small file's response is one write already
		return true
	}
	// The head and the body's first bytes go in one write with what
	// follows. A response that fails part way (send panics) leaves what
	// is held unsent: net/http closes the connection.
	c.hold()
	fp.send(w, f, out, first)
	if c.holds() {
		// The body's last bytes are still in net/http's buffer: flushed
		// now, they leave with the held ones.
		_ = http.NewResponseController(w).Flush()
	}
	if c.unhold() != nil {
		panic(http.ErrAbortHandler)
	}
	return true
}

// open opens the file the path rest under root leads to: the one a names,
// if the answer is known, else found by walking the directories (roots).
func (fp *fastPath) open(ctx context.Context, root *rootName, rest string, a *answer) (*fileReader, dagpb.UnixFS, []cid.Cid, bool) {
	buf := leafBufs.Get().(*[]byte)
	var roots []cid.Cid
	var last cid.Cid
	var raw []byte
	var err error
	if a != nil {
		last = a.last
		raw, err = fp.rd.ReadBlock(ctx, last, (*buf)[:0])
	} else {
		roots, last, raw, err = fp.res.walk(ctx, root.c, rest, (*buf)[:0])
	}
	if err != nil {
		leafBufs.Put(buf)
		return nil, dagpb.UnixFS{}, nil, false
	}
	if cap(raw) > cap(*buf) {
		*buf = raw[:0]
	}
	f, u, err := openFile(ctx, fp.rd, last, raw, buf)
	if err != nil {
		leafBufs.Put(buf)
		return nil, dagpb.UnixFS{}, nil, false
	}
	return f, u, roots, true
}

// contentType is what boxo's serveFile sends: the type by the name's
// extension, else sniffed from the first bytes; text/html without its
// charset.
func contentType(rest string, head []byte) string {
	name := ""
	if rest != "" {
		name = gopath.Base(rest)
	}
	ctype := mime.TypeByExtension(gopath.Ext(name))
	if ctype == "" {
		ctype = mimetype.Detect(head).String()
	}
	if strings.HasPrefix(ctype, "text/html;") {
		ctype = "text/html"
	}
	return ctype
}

// readHead reads the first writeSize bytes of a file of more than one
// block (and checks them) before the status, for the sniffer and so that
// a block that does not read there leaves the whole answer to boxo. It
// returns them (nil for a one-block file) and the rest of the last block
// read; false if a block did not read.
func readHead(f *fileReader, first []byte) (*[]byte, []byte, bool) {
	if f.pos >= f.size {
		return nil, first, true
	}
	out := writeBufs.Get().(*[]byte)
	*out = (*out)[:0]
	for {
		n := min(len(first), cap(*out)-len(*out))
		*out = append(*out, first[:n]...)
		first = first[n:]
		if len(*out) == cap(*out) || f.pos >= f.size {
			return out, first, true
		}
		var err error
		if first, err = f.next(); err != nil {
			writeBufs.Put(out)
			return nil, nil, false
		}
	}
}

// send writes the file's bytes after the status: out (read before it;
// nil for a file of one block), then first (the rest of the last block
// read), then the blocks that follow, gathered to writeSize. A block
// that does not read aborts the response.
func (fp *fastPath) send(w http.ResponseWriter, f *fileReader, out *[]byte, first []byte) {
	if out == nil {
		_, _ = w.Write(first) // a file of one block: one write
		return
	}
	defer writeBufs.Put(out)
	for chunk := first; ; {
		// Bytes read are written before the next block is read: a block
		// that does not read cuts the response after them.
		if len(*out) == cap(*out) {
			if _, err := w.Write(*out); err != nil {
				return
			}
			*out = (*out)[:0]
		}
		for len(chunk) > 0 {
			if len(*out) == 0 && len(chunk) >= cap(*out) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
				break
			}
			n := min(len(chunk), cap(*out)-len(*out))
			*out = append(*out, chunk[:n]...)
			chunk = chunk[n:]
			if len(*out) == cap(*out) {
				if _, err := w.Write(*out); err != nil {
					return
				}
				*out = (*out)[:0]
			}
		}
		if f.pos >= f.size {
			break
		}
		var err error
		if chunk, err = f.next(); err != nil {
			panic(http.ErrAbortHandler)
		}
	}
	if len(*out) > 0 {
		_, _ = w.Write(*out)
	}
}

// rootName decodes the root a path names, as boxo's handler would take
// it: a CID of a dag-pb or raw block (others, and CIDs that inline their
// block, are boxo's).
func (fp *fastPath) rootName(text string) (*rootName, bool) {
	if rn := fp.root.Load(); rn != nil && rn.text == text {
		return rn, true
	}
	c, ok := blockCID(text)
	if !ok {
		return nil, false
	}
	authority, err := cid.NewCidV1(c.Type(), c.Hash()).StringOfBase(multibase.Base32)
	if err != nil {
		return nil, false
	}
	rn := &rootName{text: text, c: c, authority: authority}
	fp.root.Store(rn)
	return rn, true
}

// blockCID decodes text as a CID the fast and CAR paths answer for: of a
// dag-pb or raw block, not inlined in the CID (identity); boxo answers
// for the others.
func blockCID(text string) (cid.Cid, bool) {
	c, err := cid.Decode(text)
	if err != nil || c.Prefix().MhType == mh.IDENTITY {
		return cid.Undef, false
	}
	if codec := c.Prefix().Codec; codec != cid.DagProtobuf && codec != cid.Raw {
		return cid.Undef, false
	}
	return c, true
}

// maxIpfsURI is the longest Ipfs-Uri boxo sends (a longer one is left out).
const maxIpfsURI = 8192

// appendIpfsURI appends boxo's Ipfs-Uri header (ipfsUriHeaderValue) for
// the path /ipfs/{root}/{rest}: ipfs://{authority} and each segment of
// rest with every byte but RFC 3986's unreserved ones as %XX; false (and
// b as it was) if that is longer than boxo sends.
func appendIpfsURI(b []byte, authority, rest string) ([]byte, bool) {
	const upperhex = "0123456789ABCDEF"
	n := len(b)
	b = append(b, "ipfs://"...)
	b = append(b, authority...)
	if rest != "" {
		b = append(b, '/')
		for i := 0; i < len(rest); i++ {
			switch c := rest[i]; {
			case 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
				c == '-' || c == '.' || c == '_' || c == '~' || c == '/':
				b = append(b, c)
			default:
				b = append(b, '%', upperhex[c>>4], upperhex[c&0xF])
			}
		}
	}
	if len(b)-n > maxIpfsURI {
		return b[:n], false
	}
	return b, true
}
