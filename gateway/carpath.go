package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
	pb "github.com/ipfs/boxo/ipld/unixfs/pb"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multibase"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/internal/dagpb"
)

// carPath answers the CAR requests a puller makes, as boxo's handler
// answers them (status, every header, body: TestCARPathAnswersAsBoxo):
// GET /ipfs/{cid}?format=car&dag-scope=entity for each new file of many
// blocks (a UnixFS file's blocks depth-first, each once, or the block
// alone of any other node but a HAMT shard), and ?format=car&dag-scope=all
// for each HAMT shard it reads ahead (every block under it, depth-first
// in link order, each once), with the Accept of a CAR v1 in dfs order
// without duplicates, or none. boxo builds such a CAR through its path
// resolver and its IPLD traversal, reading each block from the
// blockservice (and hashing it) more than once; here each block is read
// once, checked by the store's sum (BlockReader), and the CAR goes out in
// writes of writeSize. Anything else (other scopes and parameters, HEAD,
// ranges, conditionals, an entity CAR of a HAMT, a root that does not
// read or decode) goes to next; a block that does not read once the
// status is sent, or one boxo would walk otherwise (a codec but dag-pb
// and raw, a file node of another shape), aborts the response, so a
// client sees a cut CAR, never a complete-looking one.
type carPath struct {
	rd   BlockReader
	next http.Handler
}

// carAccept is the Accept a puller sends with its CAR requests.
const carAccept = "application/vnd.ipld.car; version=1; order=dfs; dups=n"

// The queries the CAR path takes: a UnixFS entity, and a whole DAG.
const (
	carEntityQuery = "format=car&dag-scope=entity"
	carAllQuery    = "format=car&dag-scope=all"
)

func (cp *carPath) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c, all, ok := carRequest(r); !ok || !cp.serve(w, r, c, all) {
		cp.next.ServeHTTP(w, r)
	}
}

// carRequest is the root of r if r is a request the CAR path takes, and
// whether it asks for the whole DAG (else the entity): a GET of
// /ipfs/{cid} (the CID as its own String gives it, of a dag-pb or raw
// block not inlined) with one of its queries, an Accept of carAccept or
// none, and none of the headers that change boxo's answer (Range, the
// conditionals, Cache-Control: only-if-cached, Service-Worker,
// X-Forwarded-Host).
func carRequest(r *http.Request) (c cid.Cid, all, ok bool) {
	q := r.URL.RawQuery
	if r.Method != http.MethodGet || q != carEntityQuery && q != carAllQuery || !strings.HasPrefix(r.URL.Path, "/ipfs/") {
		return cid.Undef, false, false
	}
	h := r.Header
	if a, ok := h["Accept"]; ok && (len(a) != 1 || a[0] != carAccept) {
		return cid.Undef, false, false
	}
	if changesAnswer(h) {
		return cid.Undef, false, false
	}
	text := r.URL.Path[len("/ipfs/"):]
	c, ok = blockCID(text)
	if !ok || c.String() != text {
		return cid.Undef, false, false
	}
	return c, q == carAllQuery, true
}

// serve answers r with the CAR of c's entity, or with all (all), if the
// CAR path takes it, and says whether it did.
func (cp *carPath) serve(w http.ResponseWriter, r *http.Request, c cid.Cid, all bool) bool {
	ctx := r.Context()
	buf := leafBufs.Get().(*[]byte)
	defer leafBufs.Put(buf)
	raw, err := cp.rd.ReadBlock(ctx, c, (*buf)[:0])
	if err != nil {
		return false // boxo's answer: rootCheck's 404, or its error
	}
	if cap(raw) > cap(*buf) {
		*buf = raw[:0]
	}
	var children []link // nil: the CAR is the root block alone
	if c.Prefix().Codec == cid.DagProtobuf {
		if all {
			children, err = allChildren(raw)
		} else {
			var whole bool
			if children, whole, err = entityChildren(raw, true); err == nil && !whole {
				err = errShape
			}
		}
		if err != nil {
			return false
		}
	}

	setCARHeaders(w.Header(), c, all)
	w.WriteHeader(http.StatusOK)
	out := writeBufs.Get().(*[]byte)
	defer writeBufs.Put(out)
	cw := &carWriter{w: w, out: (*out)[:0], seen: map[string]struct{}{}, all: all}
	cw.header(c)
	cw.block(c, raw)
	if err := cw.children(ctx, cp.rd, children, buf, 1); err != nil {
		if cw.err != nil {
			return true // the client went away
		}
		panic(http.ErrAbortHandler)
	}
	cw.flush()
	*out = cw.out[:0]
	return true
}

// setCARHeaders sets the headers boxo's handler sends with the CAR of
// /ipfs/{c} with dag-scope entity, or all.
func setCARHeaders(hd http.Header, c cid.Cid, all bool) {
	text := c.String()
	hd["Content-Disposition"] = []string{`attachment; filename="` + text + `.car"; filename*=UTF-8''` + text + ".car"}
	hd["Cache-Control"] = []string{cacheControl}
	hd["Etag"] = []string{carEtag(text, all)}
	if authority, err := cid.NewCidV1(c.Type(), c.Hash()).StringOfBase(multibase.Base32); err == nil {
		if uri, ok := appendIpfsURI(nil, authority, ""); ok {
			hd["Ipfs-Uri"] = []string{string(uri)}
		}
	}
	hd["X-Ipfs-Roots"] = []string{text}
	hd["Accept-Ranges"] = []string{"none"}
	hd["Content-Type"] = []string{carAccept}
	hd["X-Content-Type-Options"] = []string{"nosniff"}
}

// carEtag is boxo's getCarEtag for the path /ipfs/{text} in dfs order
// without duplicates: the only parameter it hashes is a scope but all.
func carEtag(text string, all bool) string {
	h := xxhash.New()
	_, _ = h.WriteString("/ipfs/" + text)
	if !all {
		_, _ = h.WriteString("\x00scope=entity")
	}
	return `W/"` + text + ".car." + strconv.FormatUint(h.Sum64(), 32) + `"`
}

// link is a child of a file node and the bytes of the file under it, as
// boxo's UnixFS reader (go-unixfsnode) counts them: a raw child's link
// Tsize, a dag-pb child's Blocksize.
type link struct {
	c    cid.Cid
	size uint64
}

// errShape means a block is not one boxo walks the way the CAR path does
// (a file node of another shape, a codec but dag-pb and raw).
var errShape = errors.New("a block the CAR path does not walk")

// entityChildren decodes a dag-pb node and gives the children whose
// blocks follow it in its entity's CAR: none but for a UnixFS File (or,
// below the root, Raw) node with links. At the root (root), whole is
// false for a node boxo's entity walk may treat otherwise (a HAMT shard:
// all its shards; UnixFS data that does not decode here; Blocksizes that
// do not match the links); below it, such a node, or any but a File or
// Raw node, is errShape.
func entityChildren(raw []byte, root bool) ([]link, bool, error) {
	var links []link
	data, err := dagpb.DecodeNode(raw, func(_ string, c cid.Cid, tsize uint64) {
		links = append(links, link{c: c, size: tsize})
	})
	if err != nil {
		return nil, false, err
	}
	u, err := dagpb.DecodeUnixFS(data)
	file := err == nil && len(data) > 0 && (u.Type == pb.Data_File || !root && u.Type == pb.Data_Raw)
	switch {
	case root && err == nil && len(data) > 0 && (u.Type == pb.Data_Directory || u.Type == pb.Data_Symlink || u.Type == pb.Data_Raw || u.Type == pb.Data_Metadata):
		return nil, true, nil
	case file && len(links) == 0:
		return nil, true, nil
	case !file || len(u.Blocksizes) != len(links):
		if root {
			return nil, false, nil
		}
		return nil, false, errShape
	}
	for i := range links {
		if links[i].c.Prefix().Codec != cid.Raw {
			links[i].size = u.Blocksizes[i]
		}
	}
	// The reader opens no child before the first byte it reads: the
	// children that hold no bytes at the start are never loaded.
	for len(links) > 0 && links[0].size == 0 {
		links = links[1:]
	}
	return links, true, nil
}

// allChildren is every link of a dag-pb node, in order: what boxo's
// traversal of all (a selector exploring everything) follows from it.
func allChildren(raw []byte) ([]link, error) {
	var links []link
	_, err := dagpb.DecodeNode(raw, func(_ string, c cid.Cid, _ uint64) {
		links = append(links, link{c: c})
	})
	return links, err
}

// carWriter writes a CAR v1 to a response in writes of writeSize (a
// larger block in a write of its own), each block once by multihash (as
// go-car's writer dedups) and none inlined in its CID.
type carWriter struct {
	w    http.ResponseWriter
	out  []byte
	seen map[string]struct{}
	all  bool  // every link followed, not a file's entity
	err  error // the first write's error: nothing more is sent
}

// header writes the CAR v1 header with the single root c: the dag-cbor
// map {"roots": [c], "version": 1}, its length first.
func (cw *carWriter) header(c cid.Cid) {
	cb := c.Bytes()
	var h []byte
	h = append(h, 0xa2, 0x65)
	h = append(h, "roots"...)
	h = append(h, 0x81, 0xd8, 0x2a) // an array of one, tag 42 (a CID)
	h = cborBytesHead(h, len(cb)+1)
	h = append(h, 0) // the CID's multibase prefix: raw binary
	h = append(h, cb...)
	h = append(h, 0x67)
	h = append(h, "version"...)
	h = append(h, 0x01)
	cw.out = binary.AppendUvarint(cw.out, uint64(len(h)))
	cw.out = append(cw.out, h...)
}

// cborBytesHead appends the head of a CBOR byte string of n bytes.
func cborBytesHead(dst []byte, n int) []byte {
	switch {
	case n < 24:
		return append(dst, 0x40|byte(n))
	case n < 1<<8:
		return append(dst, 0x58, byte(n))
	default:
		return append(dst, 0x59, byte(n>>8), byte(n))
	}
}

// block adds the section of block c, unless it is inlined in its CID or
// already sent.
func (cw *carWriter) block(c cid.Cid, data []byte) {
	if c.Prefix().MhType == mh.IDENTITY || cw.err != nil {
		return
	}
	key := string(c.Hash())
	if _, dup := cw.seen[key]; dup {
		return
	}
	cw.seen[key] = struct{}{}
	id := c.KeyString()
	// The section's head (its length and CID) never makes the buffer
	// grow: it goes back to writeBufs at writeSize.
	if len(cw.out)+binary.MaxVarintLen64+len(id)+len(data) > cap(cw.out) {
		cw.flush()
	}
	cw.out = binary.AppendUvarint(cw.out, uint64(len(id)+len(data)))
	cw.out = append(cw.out, id...)
	if len(data) > cap(cw.out)-len(cw.out) {
		cw.flush()
		cw.write(data)
		return
	}
	cw.out = append(cw.out, data...)
}

// sent says whether c's block is in the CAR already (or inlined).
func (cw *carWriter) sent(c cid.Cid) bool {
	_, dup := cw.seen[string(c.Hash())]
	return dup || c.Prefix().MhType == mh.IDENTITY && c.Prefix().Codec == cid.Raw
}

func (cw *carWriter) flush() {
	if len(cw.out) > 0 {
		cw.write(cw.out)
		cw.out = cw.out[:0]
	}
}

func (cw *carWriter) write(p []byte) {
	if cw.err == nil {
		_, cw.err = cw.w.Write(p)
	}
}

// allMaxDepth is the deepest node boxo's traversal of all loads: it
// stops at a path of 1024 segments (DefaultMaxTraversalDepth), and each
// dag-pb level is three (Links, the index, Hash).
const allMaxDepth = 1024 / 3

// children adds the blocks under a node, depth-first as boxo loads them:
// each child, then (a dag-pb one) its own children. A subtree already
// sent was sent whole, so it is skipped.
func (cw *carWriter) children(ctx context.Context, rd BlockReader, links []link, buf *[]byte, depth int) error {
	limit := maxDepth
	if cw.all {
		limit = allMaxDepth
	}
	if depth > limit {
		return fmt.Errorf("deeper than %d levels", limit)
	}
	for _, l := range links {
		if cw.err != nil {
			return cw.err
		}
		if cw.sent(l.c) {
			continue
		}
		raw, err := rd.ReadBlock(ctx, l.c, (*buf)[:0])
		if err != nil {
			return err
		}
		if cap(raw) > cap(*buf) {
			*buf = raw[:0]
		}
		switch l.c.Prefix().Codec {
		case cid.Raw:
			cw.block(l.c, raw)
		case cid.DagProtobuf:
			var below []link
			if cw.all {
				below, err = allChildren(raw)
			} else {
				below, _, err = entityChildren(raw, false)
			}
			if err != nil {
				return fmt.Errorf("block %s: %w", l.c, err)
			}
			cw.block(l.c, raw)
			if err := cw.children(ctx, rd, below, buf, depth+1); err != nil {
				return err
			}
		default:
			return fmt.Errorf("block %s: %w", l.c, errShape)
		}
	}
	return cw.err
}
