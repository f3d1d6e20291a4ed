package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/profile"
)

// fastPathFiles are files whose answers the fast path gives: types by
// extension and sniffed, empty and tiny, one block and many (leaves
// smaller than what the sniffer reads, more bytes than a write), names
// that need escaping, a directory big enough to be a HAMT.
func fastPathFiles() map[string][]byte {
	files := map[string][]byte{
		"empty":          nil,
		"empty.txt":      nil,
		"one":            []byte("a"),
		"small.txt":      []byte("a small text file\n"),
		"UPPER.TXT":      []byte("upper-case extension\n"),
		"page":           []byte("<!DOCTYPE html><html><body>sniffed</body></html>"),
		"page.html":      []byte("<html><body>by extension</body></html>"),
		"style.css":      []byte("body { color: red }\n"),
		"data.json":      []byte(`{"a": 1}`),
		"json-sniffed":   []byte(`{"a": [1, 2, 3]}`),
		"pic.png":        []byte("not a png at all"),
		"png-sniffed":    append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), randomBytes(4, 2000)...),
		"doc-sniffed":    append([]byte("%PDF-1.4\n"), randomBytes(5, 9000)...),
		"gz-sniffed":     append([]byte{0x1f, 0x8b, 0x08, 0x00}, randomBytes(6, 700)...),
		"image.svg":      []byte(`<svg xmlns="http://www.w3.org/2000/svg"></svg>`),
		"pkg.deb":        randomBytes(7, 3000),
		"archive.tar.gz": randomBytes(8, 4100),
		"random":         randomBytes(9, 5000),
		"long-html":      []byte("<html><body>" + strings.Repeat("multi-leaf and sniffed ", 400) + "</body></html>"),
		"long-text":      bytes.Repeat([]byte("text over many leaves\n"), 2000),
		// Text for more than a leaf, then bytes that are not: binary if
		// the sniffer sees its 3 KiB, text if it saw one leaf.
		"text-then-binary":        append(bytes.Repeat([]byte("plain "), 450), randomBytes(13, 2000)...),
		"json-long":               []byte(`{"list": [` + strings.Repeat(`"item", `, 300) + `"end"]}`),
		"big.bin":                 randomBytes(10, 700_000),
		"a/b/c/deep.deb":          randomBytes(11, 40_000),
		"a/b/name with space":     randomBytes(12, 3000),
		"odd/ünïcödé.txt":         []byte("unicode name\n"),
		"odd/per%cent":            []byte("per cent\n"),
		"odd/q?mark#hash":         []byte("query and fragment characters\n"),
		"odd/semi;colon=eq&amp+":  []byte("sub-delims\n"),
		"odd/quote's, and (more)": []byte("quote\n"),
		"odd/.hidden":             []byte("dot file\n"),
		"odd/trailing.":           []byte("trailing dot\n"),
		"odd/~tilde_under-dash":   []byte("unreserved\n"),
	}
	for i := range 40 {
		files[fmt.Sprintf("many/entry-%02d.dat", i)] = randomBytes(uint64(100+i), 700+i*97)
	}
	files["many/index.html"] = []byte("<p>in a HAMT</p>")
	return files
}

// TestFastPathAnswersAsBoxo: every file, asked for as a mirror client
// asks (GET or HEAD by path, or by its CID, with a browser's Accept or
// curl's), is answered by the fast path itself, and the answer is
// boxo's: status, every header but Date, body. Over DAGs of several
// shapes (small raw leaves, dag-pb leaves with mtimes, trickle, CIDv0,
// blocks inlined in identity CIDs, the default chunker); and through
// Serve's server for one of them. Requests the fast path leaves to boxo
// (ranges, conditionals, formats, queries, unclean paths, directories,
// symlinks, missing names) are boxo's answer too.
func TestFastPathAnswersAsBoxo(t *testing.T) {
	files := fastPathFiles()
	src := writeTree(t, files)
	small := profile.Overrides{Chunker: ptr("size-1024"), MaxFileLinks: ptr(4), HAMTThreshold: ptr(256), MaxHAMTFanout: ptr(8)}
	for _, tc := range []struct {
		name    string
		profile string
		o       profile.Overrides
		viaHTTP bool
	}{
		{"v1 raw leaves", profile.V1_2025, small, true},
		{"v1 with mtime", profile.V1_2025, func() profile.Overrides { o := small; o.Metadata = ptr("mtime,mode"); return o }(), false},
		{"v0 trickle", profile.V0_2015, func() profile.Overrides { o := small; o.Trickle = ptr(true); return o }(), false},
		{"inline", profile.V1_2025, func() profile.Overrides { o := small; o.Inline, o.InlineLimit = ptr(true), ptr(64); return o }(), false},
		{"default chunker", profile.V1_2025, profile.Overrides{HAMTThreshold: ptr(256), MaxHAMTFanout: ptr(8)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, root := syncTree(t, src, tc.profile, tc.o)
			rd := s.Blockstore().(BlockReader)
			fast := must(Handler(s.Blockstore(), true))
			boxo := must(Handler(plainBlockstore{s.Blockstore()}, true))
			if d, err := newResolver(rd).dir(t.Context(), resolvePath(t, s, root, "many"), nil); err != nil || d.fanout == 0 {
				t.Fatalf("many/ is not a HAMT: %v", err)
			}
			// The fast path alone: what it leaves to boxo is a failure.
			alone := &fastPath{bs: s.Blockstore(), rd: rd, res: newResolver(rd), next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				t.Errorf("%s %s: left to boxo", r.Method, r.URL)
				w.WriteHeader(599)
			})}
			var targets []string
			for p := range files {
				targets = append(targets, "/ipfs/"+root.String()+"/"+escape(p))
			}
			for _, p := range []string{"big.bin", "page", "empty", "a/b/c/deep.deb"} {
				targets = append(targets, "/ipfs/"+resolvePath(t, s, root, p).String())
			}
			for _, target := range targets {
				// A root inlined in its CID is boxo's to answer.
				inlined := strings.HasPrefix(target, "/ipfs/") && !strings.Contains(target[len("/ipfs/"):], "/") &&
					cid.MustParse(target[len("/ipfs/"):]).Prefix().MhType == mh.IDENTITY
				for _, m := range []string{http.MethodGet, http.MethodHead} {
					for _, h := range []http.Header{nil, {"Accept": {"*/*"}}, {"Accept": {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}}} {
						compare(t, fast, boxo, m, target, h)
						req := httptest.NewRequest(m, target, nil)
						for k, v := range h {
							req.Header[k] = v
						}
						if !inlined {
							alone.ServeHTTP(httptest.NewRecorder(), req)
						}
					}
				}
			}
			file := "/ipfs/" + root.String() + "/long-html"
			for _, tc := range []struct {
				target string
				h      http.Header
			}{
				{file, http.Header{"Range": {"bytes=5-100"}}},
				{file, http.Header{"If-None-Match": {`"` + resolvePath(t, s, root, "long-html").String() + `"`}}},
				{file, http.Header{"If-Modified-Since": {"Mon, 02 Jan 2006 15:04:05 GMT"}}},
				{file, http.Header{"Accept": {"application/vnd.ipld.raw"}}},
				{file, http.Header{"Accept": {"text/html, application/vnd.ipld.car"}}},
				{file, http.Header{"Cache-Control": {"only-if-cached"}}},
				{file, http.Header{"Service-Worker": {"script"}}},
				{file + "?format=raw", nil},
				{file + "?filename=x.txt&download=true", nil},
				{file + "/", nil},
				{"/ipfs/" + root.String() + "//long-html", nil},
				{"/ipfs/" + root.String() + "/odd/../long-html", nil},
				// Listings of plain directories only: boxo lists a HAMT's
				// entries in an order of its own each time.
				{"/ipfs/" + root.String() + "/many", nil},
				{"/ipfs/" + root.String() + "/a/b", nil},
				{"/ipfs/" + root.String() + "/a/b/", nil},
				{"/ipfs/" + root.String() + "/nope", nil},
				{"/ipfs/" + root.String() + "/small.txt/x", nil},
				{"/ipfs/ipfs/" + root.String() + "/small.txt", nil},
				{"/ipfs/not-a-cid/small.txt", nil},
			} {
				compare(t, fast, boxo, http.MethodGet, tc.target, tc.h)
			}
			if !tc.viaHTTP {
				return
			}
			// The fast path through Serve's server, whose connections
			// send a response's head with the body's first bytes.
			fastURL := "http://" + serve(t, s, Options{Browse: true})
			boxoSrv := httptest.NewServer(boxo)
			defer boxoSrv.Close()
			for _, target := range targets {
				compareHTTP(t, fastURL, boxoSrv.URL, target)
			}
		})
	}
}

// compareHTTP GETs target from both servers, each over its keep-alive
// connection, and fails unless the answers match: status, headers but
// Date, body.
func compareHTTP(t *testing.T, fastURL, boxoURL, target string) {
	t.Helper()
	get := func(base string) (*http.Response, []byte) {
		resp, err := http.Get(base + target)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		resp.Header.Del("Date")
		return resp, body
	}
	got, gotBody := get(fastURL)
	want, wantBody := get(boxoURL)
	if got.StatusCode != want.StatusCode || fmt.Sprint(got.Header) != fmt.Sprint(want.Header) || !bytes.Equal(gotBody, wantBody) {
		t.Errorf("GET %s over HTTP: %d %v (%d bytes), boxo's %d %v (%d bytes)", target, got.StatusCode, got.Header, len(gotBody), want.StatusCode, want.Header, len(wantBody))
	}
}

// The fast path writes a file of many leaves in writes of writeSize (the
// last one less), and a file of one block in one write.
func TestFastPathWritesLarge(t *testing.T) {
	src := writeTree(t, map[string][]byte{"big.bin": randomBytes(1, 3*writeSize+1000), "one.bin": randomBytes(2, 5000)})
	s, root := syncTree(t, src, profile.V1_2025, profile.Overrides{Chunker: ptr("size-1024")})
	h := must(Handler(s.Blockstore(), true))
	for _, tc := range []struct {
		file   string
		writes []int
	}{
		{"big.bin", []int{writeSize, writeSize, writeSize, 1000}},
		{"one.bin", []int{5000}},
	} {
		rec := &writeRecorder{ResponseRecorder: httptest.NewRecorder()}
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ipfs/"+root.String()+"/"+tc.file, nil))
		if rec.Code != http.StatusOK || fmt.Sprint(rec.writes) != fmt.Sprint(tc.writes) {
			t.Errorf("%s: status %d, writes %v; want 200, %v", tc.file, rec.Code, rec.writes, tc.writes)
		}
	}
}

type writeRecorder struct {
	*httptest.ResponseRecorder
	writes []int
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.writes = append(w.writes, len(p))
	return w.ResponseRecorder.Write(p)
}
