package gateway

import (
	"maps"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/internal/dagpb"
)

// answer is what the fast path's answer for a path says about its file,
// the values of its headers but Date and Ipfs-Uri (which is the path's).
type answer struct {
	last     cid.Cid
	lastText string // Etag's, and the end of X-Ipfs-Roots
	size     int64
	ctype    string
	modified string // Last-Modified: "" for none
	// rootsHead is X-Ipfs-Roots up to lastText: the CIDs of the
	// directories on the path, each followed by a comma (shared by the
	// answers of one directory's files).
	rootsHead string
}

func newAnswer(res *resolver, roots []cid.Cid, last cid.Cid, u dagpb.UnixFS, ctype string, size int64) *answer {
	a := &answer{last: last, lastText: last.String(), size: size, ctype: ctype}
	if mt := u.ModTime(); !mt.IsZero() && !mt.Equal(time.Unix(0, 0)) {
		a.modified = mt.UTC().Format(http.TimeFormat)
	}
	var b strings.Builder
	for _, c := range roots {
		b.WriteString(res.text(c))
		b.WriteByte(',')
	}
	a.rootsHead = b.String()
	return a
}

// cacheControl is what boxo sends with an immutable path's answer.
const cacheControl = "public, max-age=29030400, immutable"

// setHeaders sets the headers boxo's handler sends with a UnixFS file,
// with canonical names set directly (no canonicalisation per request).
func (a *answer) setHeaders(hd http.Header, authority, rest string) {
	hd["Etag"] = []string{`"` + a.lastText + `"`}
	hd["Cache-Control"] = []string{cacheControl}
	if uri, ok := appendIpfsURI(nil, authority, rest); ok {
		hd["Ipfs-Uri"] = []string{string(uri)}
	}
	hd["X-Ipfs-Roots"] = []string{a.rootsHead + a.lastText}
	if a.modified != "" {
		hd["Last-Modified"] = []string{a.modified}
	}
	hd["Content-Type"] = []string{a.ctype}
	hd["Accept-Ranges"] = []string{"bytes"}
	hd["Content-Length"] = []string{strconv.FormatInt(a.size, 10)}
}

// answers remembers the fast loop's answers by path. What /ipfs/{root}/path
// leads to and its answer's headers never change (the root names all of
// it), so a path asked again skips the walk through its directories, the
// sniffing of its Content-Type and the formatting of its header values
// (docs/benchmarks.md#decisions). The file's blocks are still read and
// checked for every answer, so a block gone since (a gc) or corrupt is
// found as it was without them. They are two generations of at most
// maxAnswerBytes each: when the newer is full it becomes the older, and
// an answer found in the older moves to the newer.
type answers struct {
	mu       sync.Mutex
	cur, old map[string]*answer
	bytes    int // in cur
}

// maxAnswerBytes bounds a generation: 16 MiB holds about 45,000 answers.
const maxAnswerBytes = 16 << 20

// cost is about what an answer for path takes: the map's key and slot, the
// answer and its own strings (rootsHead is shared).
func (a *answer) cost(path string) int {
	return len(path) + len(a.lastText) + len(a.modified) + len(a.last.KeyString()) + 192
}

func (as *answers) get(path string) *answer {
	as.mu.Lock()
	defer as.mu.Unlock()
	if a := as.cur[path]; a != nil {
		return a
	}
	a := as.old[path]
	if a != nil {
		delete(as.old, path)
		as.addLocked(path, a)
	}
	return a
}

func (as *answers) put(path string, a *answer) {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.addLocked(path, a)
}

func (as *answers) addLocked(path string, a *answer) {
	n := a.cost(path)
	if as.cur == nil || as.bytes+n > maxAnswerBytes {
		as.old, as.cur, as.bytes = as.cur, map[string]*answer{}, 0
	}
	as.cur[path] = a
	as.bytes += n
}

// headPart is a piece of a fast loop's file answer head: header lines as
// they are (text) or the line of one of the answer's headers (field).
type headPart struct {
	text  []byte
	field string
}

// answerHead is the fast loop's head of a file answer as
// fastWriter.WriteHeader would build it from the CORS headers and
// setHeaders': status line, then the lines sorted by name; the CORS
// headers and the fixed ones as text, each answer's own as fields.
type answerHead []headPart

var answerFields = []string{"Content-Length", "Content-Type", "Etag", "Ipfs-Uri", "Last-Modified", "X-Ipfs-Roots"}

func newAnswerHead(cors http.Header) answerHead {
	fixed := maps.Clone(cors)
	if fixed == nil {
		fixed = http.Header{}
	}
	fixed["Accept-Ranges"] = []string{"bytes"}
	fixed["Cache-Control"] = []string{cacheControl}
	for _, k := range answerFields {
		delete(fixed, k) // the answer's own value wins, as in setHeaders
	}
	keys := append(slices.Collect(maps.Keys(fixed)), answerFields...)
	slices.Sort(keys)
	h := answerHead{{text: []byte("HTTP/1.1 200 OK\r\n")}}
	for _, k := range keys {
		if _, ok := fixed[k]; !ok {
			h = append(h, headPart{field: k})
			continue
		}
		last := &h[len(h)-1]
		if last.field != "" {
			h = append(h, headPart{})
			last = &h[len(h)-1]
		}
		for _, v := range fixed[k] {
			last.text = appendHeaderLine(last.text, k, v)
		}
	}
	return h
}

// appendHeaderLine appends the line k: v as net/http writes it.
func appendHeaderLine(b []byte, k, v string) []byte {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, textproto.TrimString(v)...)
	return append(b, "\r\n"...)
}

// writeAnswer is WriteHeader(200) with a's headers for the path
// /ipfs/{authority's root}/rest, built from the loop's answerHead.
func (w *fastWriter) writeAnswer(a *answer, authority, rest string) {
	w.status = http.StatusOK
	b := w.head[:0]
	for _, p := range w.answerHead {
		if p.field == "" {
			b = append(b, p.text...)
			continue
		}
		b = a.appendField(b, p.field, authority, rest)
	}
	b = append(b, "Date: "...)
	b = append(b, w.now()...)
	w.head = append(b, "\r\n\r\n"...)
}

// appendField appends the line of the answer's header k, if it has one.
func (a *answer) appendField(b []byte, k, authority, rest string) []byte {
	switch k {
	case "Content-Length":
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, a.size, 10)
	case "Content-Type":
		return appendHeaderLine(b, k, a.ctype)
	case "Etag":
		b = append(b, `Etag: "`...)
		b = append(b, a.lastText...)
		b = append(b, '"')
	case "Ipfs-Uri":
		n := len(b)
		b = append(b, "Ipfs-Uri: "...)
		var ok bool
		if b, ok = appendIpfsURI(b, authority, rest); !ok {
			return b[:n]
		}
	case "Last-Modified":
		if a.modified == "" {
			return b
		}
		b = append(b, "Last-Modified: "...)
		b = append(b, a.modified...)
	case "X-Ipfs-Roots":
		b = append(b, "X-Ipfs-Roots: "...)
		b = append(b, a.rootsHead...)
		b = append(b, a.lastText...)
	}
	return append(b, "\r\n"...)
}
