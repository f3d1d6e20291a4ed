package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	bstore "github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/internal/packtest"
	"github.com/ipfs-sync/ipfs-sync/profile"
	isync "github.com/ipfs-sync/ipfs-sync/sync"
)

// writeTree writes files (path → content) under a new directory.
func writeTree(t *testing.T, files map[string][]byte) string {
	t.Helper()
	src := t.TempDir()
	for p, data := range files {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// syncTree imports src into a new repository with the profile named name
// and the overrides o, as `ipfs-sync sync` does.
func syncTree(t *testing.T, src, name string, o profile.Overrides) (*blockstore.Store, cid.Cid) {
	t.Helper()
	p, err := profile.New(name, o)
	if err != nil {
		t.Fatal(err)
	}
	s, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	sum, err := isync.Run(t.Context(), s, isync.Options{Src: src, Profile: p, Filter: diff.Filter{Hidden: true}})
	if err != nil {
		t.Fatal(err)
	}
	root, err := cid.Decode(sum.Root)
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// plainBlockstore is a Blockstore without ReadBlock: boxo serves it all.
type plainBlockstore struct{ bstore.Blockstore }

// countingStore counts the blocks read through ReadBlock.
type countingStore struct {
	bstore.Blockstore
	rd    BlockReader
	reads atomic.Int64
}

func (c *countingStore) ReadBlock(ctx context.Context, id cid.Cid, buf []byte) ([]byte, error) {
	c.reads.Add(1)
	return c.rd.ReadBlock(ctx, id, buf)
}

func ptr[T any](v T) *T { return &v }

// A file served from the packs gets the answer boxo gives, header for
// header and byte for byte: whole, by Range (from the start, the middle,
// the end, past it), to HEAD and to a conditional GET, by path through
// plain and HAMT-sharded directories and by its CID; under DAGs of
// several shapes (raw and dag-pb leaves, balanced and trickle, several
// levels, empty files and chunks, mtimes, blocks inlined in identity CIDs). What it does not serve (a
// directory, a symlink, a missing name) is boxo's answer too.
func TestFileAnswersAsBoxo(t *testing.T) {
	files := map[string][]byte{
		"empty":               nil,
		"small.txt":           []byte("a small text file\n"),
		"page":                []byte("<!DOCTYPE html><html><body>sniffed</body></html>"),
		"mid.bin":             randomBytes(1, 5000),
		"a/b/c/deep.deb":      randomBytes(2, 40_000),
		"a/b/name with space": randomBytes(3, 3000),
	}
	for i := range 40 {
		files[fmt.Sprintf("many/entry-%02d.dat", i)] = randomBytes(uint64(10+i), 700+i*97)
	}
	src := writeTree(t, files)
	if err := os.Symlink("small.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	small := profile.Overrides{Chunker: ptr("size-1024"), MaxFileLinks: ptr(4), HAMTThreshold: ptr(256), MaxHAMTFanout: ptr(8)}
	for _, tc := range []struct {
		name    string
		profile string
		o       profile.Overrides
	}{
		{"v1 raw leaves", profile.V1_2025, small},
		{"v1 with metadata", profile.V1_2025, func() profile.Overrides { o := small; o.Metadata = ptr("mtime,mode"); return o }()},
		{"v0 trickle", profile.V0_2015, func() profile.Overrides { o := small; o.Trickle = ptr(true); return o }()},
		{"inline", profile.V1_2025, func() profile.Overrides { o := small; o.Inline, o.InlineLimit = ptr(true), ptr(64); return o }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, root := syncTree(t, src, tc.profile, tc.o)
			cs := &countingStore{Blockstore: s.Blockstore(), rd: s.Blockstore().(BlockReader)}
			fast, err := Handler(cs, true)
			if err != nil {
				t.Fatal(err)
			}
			boxo, err := Handler(plainBlockstore{s.Blockstore()}, true)
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for p := range files {
				paths = append(paths, p)
			}
			paths = append(paths, "link", "many", "a/b", "nope", "a/nope/x", "small.txt/x")
			fileCID := resolvePath(t, s, root, "a/b/c/deep.deb")
			if d, err := newResolver(cs).dir(t.Context(), resolvePath(t, s, root, "many"), nil); err != nil || d.fanout == 0 {
				t.Fatalf("many/ is not a HAMT: %v", err)
			}
			for _, p := range paths {
				compare(t, fast, boxo, http.MethodGet, "/ipfs/"+root.String()+"/"+escape(p), nil)
			}
			for _, target := range []string{"/ipfs/" + root.String() + "/a/b/c/deep.deb", "/ipfs/" + fileCID.String(), "/ipfs/" + root.String() + "/many/entry-07.dat"} {
				for _, rng := range []string{"bytes=0-0", "bytes=5-", "bytes=-7", "bytes=1000-2999", "bytes=1023-1025", "bytes=39990-", "bytes=100000-", "bytes=0-10,20-30"} {
					compare(t, fast, boxo, http.MethodGet, target, http.Header{"Range": {rng}})
				}
				compare(t, fast, boxo, http.MethodHead, target, nil)
				compare(t, fast, boxo, http.MethodGet, target, http.Header{"If-None-Match": {`"` + fileCID.String() + `"`}})
			}
			if cs.reads.Load() == 0 {
				t.Fatal("no file was read through ReadBlock: the packs' path was not taken")
			}
		})
	}
}

func escape(p string) string {
	parts := strings.Split(p, "/")
	for i := range parts {
		parts[i] = url.PathEscape(parts[i])
	}
	return strings.Join(parts, "/")
}

// resolvePath is the CID at p under root.
func resolvePath(t *testing.T, s *blockstore.Store, root cid.Cid, p string) cid.Cid {
	t.Helper()
	r := newResolver(s.Blockstore().(BlockReader))
	c := root
	for _, seg := range strings.Split(p, "/") {
		next, err := r.lookup(t.Context(), c, seg, nil)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		c = next
	}
	return c
}

// compare makes the same request of both handlers and fails unless the
// answers match: status, headers (but Date) and body.
func compare(t *testing.T, fast, boxo http.Handler, method, target string, h http.Header) {
	t.Helper()
	do := func(hd http.Handler) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, nil)
		for k, v := range h {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		hd.ServeHTTP(rec, req)
		return rec
	}
	got, want := do(fast), do(boxo)
	name := method + " " + target + fmt.Sprint(h)
	if got.Code != want.Code {
		t.Errorf("%s: status %d, boxo's %d", name, got.Code, want.Code)
	}
	gh, wh := got.Result().Header, want.Result().Header
	gh.Del("Date")
	wh.Del("Date")
	if fmt.Sprint(gh) != fmt.Sprint(wh) {
		t.Errorf("%s: headers\n%v\nboxo's\n%v", name, gh, wh)
	}
	if !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
		t.Errorf("%s: body of %d bytes differs from boxo's %d", name, got.Body.Len(), want.Body.Len())
	}
}

// A byte flipped in a leaf's data in its pack is never sent: not in a
// file by path (its bytes before the leaf may be, then the response is
// cut short), nor as the raw block, nor in a CAR (of the path, or the
// entity CAR a puller asks for by CID); by path the answer is
// boxo's too. The leaf is in the first bytes the fast path reads before
// the status (it leaves the answer to boxo), or after them (it aborts).
func TestCorruptLeafNeverSent(t *testing.T) {
	for _, tc := range []struct {
		name  string
		o     profile.Overrides
		size  int // of the file
		chunk int // of its leaves
		leaf  int // the one changed
	}{
		{"raw leaves", profile.Overrides{Chunker: ptr("size-1024")}, 10_000, 1024, 5},
		{"dag-pb leaves", profile.Overrides{Chunker: ptr("size-1024"), Metadata: ptr("mtime,mode")}, 10_000, 1024, 5},
		{"raw leaf after the status", profile.Overrides{Chunker: ptr("size-4096")}, 600_000, 4096, 100},
		{"dag-pb leaf after the status", profile.Overrides{Chunker: ptr("size-4096"), Metadata: ptr("mtime,mode")}, 600_000, 4096, 100},
		{"leaf of 1 MiB after the status", profile.Overrides{}, 3<<20 + 12345, 1 << 20, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			content := randomBytes(7, tc.size)
			src := writeTree(t, map[string][]byte{"dir/file.bin": content})
			s, root := syncTree(t, src, profile.V1_2025, tc.o)
			leaf := content[tc.leaf*tc.chunk : (tc.leaf+1)*tc.chunk]
			flipped := flipInPacks(t, s.Dir(), leaf, 500)
			leafCID := leafOf(t, s, resolvePath(t, s, root, "dir/file.bin"), tc.leaf)
			// The real server: its connections send a response's head
			// with the body's first bytes (limitedConn.hold).
			srv := struct{ URL string }{"http://" + serve(t, s, Options{Browse: true})}
			plain := httptest.NewServer(must(Handler(plainBlockstore{s.Blockstore()}, true)))
			defer plain.Close()
			for _, u := range []string{
				srv.URL + "/ipfs/" + root.String() + "/dir/file.bin",
				plain.URL + "/ipfs/" + root.String() + "/dir/file.bin",
				srv.URL + "/ipfs/" + root.String() + "/dir/file.bin?format=car",
				srv.URL + "/ipfs/" + root.String() + "?format=car",
				srv.URL + "/ipfs/" + resolvePath(t, s, root, "dir/file.bin").String() + "?" + carEntityQuery,
				srv.URL + "/ipfs/" + resolvePath(t, s, root, "dir").String() + "?" + carAllQuery,
				srv.URL + "/ipfs/" + leafCID.String() + "?format=raw",
				srv.URL + "/ipfs/" + leafCID.String(),
			} {
				status, body, complete := fetch(t, u)
				if bytes.Contains(body, flipped) {
					t.Errorf("%s: the changed bytes were sent (status %d)", u, status)
				}
				if status < 400 && complete {
					t.Errorf("%s: status %d and a complete body of %d bytes", u, status, len(body))
				}
			}
		})
	}
}

func must(h http.Handler, err error) http.Handler {
	if err != nil {
		panic(err)
	}
	return h
}

// fetch GETs u and reads its body; complete is false when the body ended
// early (an error, or fewer bytes than Content-Length), or when the
// connection closed before a response (status 0: a response aborted
// before its first bytes left the server's buffer).
func fetch(t *testing.T, u string) (status int, body []byte, complete bool) {
	t.Helper()
	resp, err := http.Get(u)
	if errors.Is(err, io.EOF) {
		return 0, nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp.StatusCode, body, err == nil && resp.Header.Get("X-Stream-Error") == ""
}

// flipInPacks flips the byte at 'at' of data, which must be in exactly one
// pack of the repository at repo, and returns the bytes around it as they
// now are.
func flipInPacks(t *testing.T, repo string, data []byte, at int) []byte {
	t.Helper()
	packtest.Flip(t, repo, data, at, 0x01)
	window := bytes.Clone(data[at-16 : at+16])
	window[16] ^= 0x01
	return window
}

// leafOf is the CID of the i-th leaf of the one-level file c.
func leafOf(t *testing.T, s *blockstore.Store, c cid.Cid, i int) cid.Cid {
	t.Helper()
	raw, err := s.ReadBlock(t.Context(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, lv, err := decodeFileNode(raw)
	if err != nil || lv == nil || len(lv.links) <= i {
		t.Fatalf("file %s: %v", c, err)
	}
	return lv.links[i]
}
