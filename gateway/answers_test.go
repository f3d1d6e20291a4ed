package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/internal/fastpath/fastpathtest"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

func testAnswer(t *testing.T, i int) *answer {
	t.Helper()
	h, err := mh.Sum([]byte(fmt.Sprint(i)), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	c := cid.NewCidV1(cid.Raw, h)
	return &answer{last: c, lastText: c.String(), size: int64(i), ctype: "text/plain"}
}

// TestAnswersKeepTwoGenerations: the answers stay within two generations
// of maxAnswerBytes, an answer asked for is kept when its generation goes,
// and one not asked for is forgotten after two.
func TestAnswersKeepTwoGenerations(t *testing.T) {
	var as answers
	path := func(i int) string { return fmt.Sprintf("/ipfs/root/dir/file-%d.deb", i) }
	perGen := maxAnswerBytes / testAnswer(t, 0).cost(path(0))
	n := 3*perGen + 17
	for i := range n {
		as.put(path(i), testAnswer(t, i))
		if i == perGen/2 {
			continue
		}
		// Answer 0 is asked for after each put: it must never be lost.
		if a := as.get(path(0)); a == nil || a.size != 0 {
			t.Fatalf("after %d puts the first answer is %v", i+1, a)
		}
	}
	if got := len(as.cur) + len(as.old); got > 2*perGen+2 {
		t.Errorf("%d answers kept, more than two generations of %d", got, perGen)
	}
	if as.bytes > maxAnswerBytes {
		t.Errorf("the newer generation takes %d bytes, more than %d", as.bytes, maxAnswerBytes)
	}
	if a := as.get(path(perGen / 2)); a != nil {
		t.Errorf("answer %d, never asked for, is still kept three generations on", perGen/2)
	}
	if a := as.get(path(n - 1)); a == nil || a.size != int64(n-1) {
		t.Errorf("the last answer put is %v", a)
	}
}

// TestRememberedAnswerReadsAgain: a path asked again gets the same answer
// (headers and bytes) from the remembered one, and its blocks are still
// read and checked: after a byte of the file changes in the packs, the
// answer never carries it.
func TestRememberedAnswerReadsAgain(t *testing.T) {
	fastpathtest.BothModes(t, func(t *testing.T, _ bool) {
		for _, tc := range []struct {
			name  string
			o     profile.Overrides
			size  int
			chunk int
			leaf  int
		}{
			{"one block", profile.Overrides{}, 40_000, 40_000, 0},
			{"a leaf after the status", profile.Overrides{Chunker: ptr("size-4096")}, 600_000, 4096, 100},
		} {
			t.Run(tc.name, func(t *testing.T) {
				content := randomBytes(11, tc.size)
				s, root := syncTree(t, writeTree(t, map[string][]byte{"pool/main/p/pkg.deb": content}), profile.V1_2025, tc.o)
				u := "http://" + serve(t, s, Options{Browse: true}) + "/ipfs/" + root.String() + "/pool/main/p/pkg.deb"
				first := get(t, u)
				for range 2 {
					again := get(t, u)
					again.Header.Del("Date")
					first.Header.Del("Date")
					if fmt.Sprint(again.Header) != fmt.Sprint(first.Header) || !bytes.Equal(again.body, first.body) {
						t.Fatalf("asked again: %v, %d bytes; first: %v, %d bytes", again.Header, len(again.body), first.Header, len(first.body))
					}
				}
				if !bytes.Equal(first.body, content) {
					t.Fatalf("got %d bytes, not the file's %d", len(first.body), len(content))
				}
				flipped := flipInPacks(t, s.Dir(), content[tc.leaf*tc.chunk:(tc.leaf+1)*tc.chunk], 500)
				status, body, complete := fetch(t, u)
				if bytes.Contains(body, flipped) {
					t.Errorf("the changed bytes were sent (status %d)", status)
				}
				if status < 400 && complete {
					t.Errorf("status %d and a complete body of %d bytes", status, len(body))
				}
			})
		}
	})
}

type response struct {
	http.Header
	body []byte
}

func get(t *testing.T, u string) response {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %v", u, resp.StatusCode, err)
	}
	return response{resp.Header, body}
}
