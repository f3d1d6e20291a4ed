package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestSpecHeaders: the answers the gateway specs ask for beyond a block
// or a CAR: CORS headers on every answer and on a preflight (any page may
// read what is served, as from kubo), and 412 to a client that asks with
// Cache-Control: only-if-cached for a root the store does not hold.
func TestSpecHeaders(t *testing.T) {
	s, _, here := testStore(t)
	h, err := Handler(s.Blockstore(), false)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	absent := "/ipfs/" + rawBlock(t, "never stored").Cid().String()
	stored := "/ipfs/" + here.String() + "?format=raw"
	cors := []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Expose-Headers"}
	for _, tt := range []struct {
		name, method, path, cacheControl string
		status                           int
	}{
		{"GET of a stored block", http.MethodGet, stored, "", http.StatusOK},
		{"preflight", http.MethodOptions, stored, "", http.StatusOK},
		{"stored block, only-if-cached", http.MethodGet, stored, "only-if-cached", http.StatusOK},
		{"absent root, only-if-cached", http.MethodGet, absent, "only-if-cached", http.StatusPreconditionFailed},
		{"absent root, HEAD only-if-cached", http.MethodHead, absent, "only-if-cached", http.StatusPreconditionFailed},
		{"absent root", http.MethodGet, absent, "", http.StatusNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.cacheControl != "" {
				req.Header.Set("Cache-Control", tt.cacheControl)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			for _, k := range cors {
				if resp.Header.Get(k) == "" {
					t.Errorf("no %s header", k)
				}
			}
		})
	}
}
