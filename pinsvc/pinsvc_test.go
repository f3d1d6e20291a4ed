package pinsvc

// These tests hold what needs no pinning service: the endpoints New
// accepts, which addresses become origins, which CIDs name the same root,
// and that the token stays out of errors. What a real service does with
// add, the removal of the name's previous pin and a failed pin is e2e's TestPinningService,
// against IPFS Cluster's Pinning Service API.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func TestNew(t *testing.T) {
	tests := []struct {
		endpoint, want, err string
	}{
		{"http://127.0.0.1:9097", "http://127.0.0.1:9097", ""},
		{"http://127.0.0.1:9097/", "http://127.0.0.1:9097", ""},
		{"https://pins.example/api/v1/", "https://pins.example/api/v1", ""},
		{"https://pins.example/api/v1", "https://pins.example/api/v1", ""},
		{"pins.example", "", "want http(s)://HOST"},
		{"ftp://pins.example", "", "want http(s)://HOST"},
		{"https://", "", "want http(s)://HOST"},
		{"https://pins.example/?token=x", "", "want http(s)://HOST"},
		{"https://pins.example/#x", "", "want http(s)://HOST"},
		{"https://user:hunter2@pins.example", "", "not the URL"},
	}
	for _, tt := range tests {
		c, err := New(tt.endpoint, "tok")
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: %v, want an error saying %q", tt.endpoint, err, tt.err)
		case tt.err != "" && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("%q: the error %q shows the password", tt.endpoint, err)
		case tt.err == "" && err != nil:
			t.Errorf("%q: %v", tt.endpoint, err)
		case tt.err == "" && c.URL() != tt.want:
			t.Errorf("%q: %s, want %s", tt.endpoint, c.URL(), tt.want)
		}
	}
}

func TestOrigins(t *testing.T) {
	const id = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	many := make([]string, 25)
	for i := range many {
		many[i] = fmt.Sprintf("/ip4/127.0.0.%d/tcp/4001/p2p/%s", i+1, id)
	}
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"none", nil, []string{}},
		{"with and without the peer", []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/4001/p2p/" + id}, []string{"/ip4/127.0.0.1/tcp/4001/p2p/" + id}},
		{"relayed", []string{"/ip4/1.2.3.4/tcp/4001/p2p/" + id + "/p2p-circuit/p2p/" + id}, []string{}},
		{"duplicates", []string{"/ip6/::1/tcp/4001/p2p/" + id, "/ip6/::1/tcp/4001/p2p/" + id}, []string{"/ip6/::1/tcp/4001/p2p/" + id}},
		{"more than the spec allows", many, many[:MaxOrigins]},
	}
	for _, tt := range tests {
		got := origins(tt.in)
		if strings.Join(got, " ") != strings.Join(tt.want, " ") || got == nil {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestSameCID(t *testing.T) {
	sum, err := mh.Sum([]byte("root"), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	v0 := cid.NewCidV0(sum)
	v1 := cid.NewCidV1(cid.DagProtobuf, sum)
	raw := cid.NewCidV1(cid.Raw, sum)
	other, _ := mh.Sum([]byte("other"), mh.SHA2_256, -1)
	b36, err := v1.StringOfBase('k')
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		s    string
		root cid.Cid
		want bool
	}{
		{"itself", v1.String(), v1, true},
		{"v0 of a v1 root", v0.String(), v1, true},
		{"v1 of a v0 root", v1.String(), v0, true},
		{"another base", b36, v1, true},
		{"another codec", raw.String(), v1, false},
		{"another hash", cid.NewCidV1(cid.DagProtobuf, other).String(), v1, false},
		{"not a CID", "pin-1", v1, false},
	}
	for _, tt := range tests {
		if got := sameCID(tt.s, tt.root); got != tt.want {
			t.Errorf("%s: sameCID(%s, %s) = %v", tt.name, tt.s, tt.root, got)
		}
	}
}

// TestTokenNotInErrors: the bearer token goes in a header only; the
// errors of every call to a service that cannot be reached name the
// endpoint, never the token.
func TestTokenNotInErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: every call is refused
	const token = "s3cr3t-t0ken"
	c, err := New("http://"+addr+"/api", token)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	root := cid.NewCidV1(cid.Raw, mh.Multihash(must(mh.Sum([]byte("x"), mh.SHA2_256, -1))))
	_, ensureErr := Ensure(ctx, c, root, Options{Name: "mirror"})
	_, listErr := c.List(ctx, ListOptions{Name: "mirror", Status: AllStatuses})
	_, addErr := c.Add(ctx, Pin{CID: root.String(), Name: "mirror"})
	_, getErr := c.Get(ctx, "req")
	deleteErr := c.Delete(ctx, "req")
	for name, err := range map[string]error{"Ensure": ensureErr, "List": listErr, "Add": addErr, "Get": getErr, "Delete": deleteErr} {
		var e *Error
		switch {
		case !errors.As(err, &e):
			t.Errorf("%s: %v, want an *Error", name, err)
		case strings.Contains(err.Error(), token):
			t.Errorf("%s: %q shows the token", name, err)
		case !strings.Contains(err.Error(), addr):
			t.Errorf("%s: %q does not name the endpoint", name, err)
		}
	}
}

func TestEnsureNameTooLong(t *testing.T) {
	c, err := New("http://127.0.0.1:1", "")
	if err != nil {
		t.Fatal(err)
	}
	root := cid.NewCidV1(cid.Raw, mh.Multihash(must(mh.Sum([]byte("x"), mh.SHA2_256, -1))))
	for _, n := range []int{MaxNameLen + 1, 4096} {
		_, err := Ensure(context.Background(), c, root, Options{Name: strings.Repeat("n", n)})
		if err == nil || !strings.Contains(err.Error(), "longer than") {
			t.Errorf("a name of %d bytes: %v, want it refused before any request", n, err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
