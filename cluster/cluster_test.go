package cluster

import (
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		url, auth        string
		base             string
		user, pass       string
		hasAuth, invalid bool
	}{
		{url: "http://127.0.0.1:9094", base: "http://127.0.0.1:9094"},
		{url: "https://cluster.example/api/", base: "https://cluster.example/api"},
		{url: "/ip4/10.0.0.1/tcp/9094", base: "http://10.0.0.1:9094"},
		{url: "/ip6/::1/tcp/9094", base: "http://[::1]:9094"},
		{url: "/dns4/cluster.example/tcp/9094", base: "http://cluster.example:9094"},
		{url: "http://u:p@127.0.0.1:9094", base: "http://127.0.0.1:9094", user: "u", pass: "p", hasAuth: true},
		// Credentials in the URL win over the environment's.
		{url: "http://u:p@127.0.0.1:9094", auth: "env:secret", base: "http://127.0.0.1:9094", user: "u", pass: "p", hasAuth: true},
		{url: "http://127.0.0.1:9094", auth: "env:sec:ret", base: "http://127.0.0.1:9094", user: "env", pass: "sec:ret", hasAuth: true},
		{url: "http://127.0.0.1:9094", auth: "no-colon", invalid: true},
		{url: "ftp://127.0.0.1:9094", invalid: true},
		{url: "127.0.0.1:9094", invalid: true},
		{url: "/ip4/10.0.0.1/udp/9094", invalid: true},
		{url: "/unix/tmp/sock/x", invalid: true},
	} {
		c, err := New(tc.url, tc.auth)
		if tc.invalid {
			if err == nil {
				t.Errorf("New(%q, %q) = %s, want an error", tc.url, tc.auth, c.URL())
			}
			continue
		}
		if err != nil {
			t.Errorf("New(%q, %q): %v", tc.url, tc.auth, err)
			continue
		}
		if c.URL() != tc.base || c.user != tc.user || c.pass != tc.pass || c.auth != tc.hasAuth {
			t.Errorf("New(%q, %q) = %s user %q pass %q auth %v, want %s %q %q %v", tc.url, tc.auth, c.URL(), c.user, c.pass, c.auth, tc.base, tc.user, tc.pass, tc.hasAuth)
		}
	}
}

func TestWant(t *testing.T) {
	peers := func(statuses ...string) []PeerStatus {
		st := make([]PeerStatus, len(statuses))
		for i, s := range statuses {
			st[i] = PeerStatus{Status: s}
		}
		return st
	}
	for _, tc := range []struct {
		name string
		pin  Pin
		opts Options
		st   []PeerStatus
		want int
	}{
		{"flag", Pin{ReplicationMin: 3}, Options{ReplicationMin: 2}, peers("pinned", "pinning", "remote"), 2},
		{"the pin's minimum", Pin{ReplicationMin: 2, ReplicationMax: 3}, Options{}, peers("pinned", "pinning", "pinning"), 2},
		{"every allocated peer", Pin{ReplicationMin: -1, Allocations: []string{"a", "b"}}, Options{}, peers("pinned", "pinning", "remote"), 2},
		{"everywhere: every peer not remote", Pin{ReplicationMin: -1}, Options{}, peers("pinned", "pinning", "pin_error", "remote"), 3},
		{"everywhere on a cluster that reports no peer", Pin{ReplicationMin: -1}, Options{}, nil, 1},
	} {
		if got := want(tc.pin, tc.opts, tc.st); got != tc.want {
			t.Errorf("%s: want = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestFactors(t *testing.T) {
	for _, tc := range []struct {
		curMin, curMax, rmin, rmax int
		wantMin, wantMax           int
	}{
		{-1, -1, 0, 0, -1, -1},
		{2, 3, 0, 0, 2, 3},
		{-1, -1, 2, 3, 2, 3},
		{-1, -1, 3, 0, 3, 3},
		{2, 5, 3, 0, 3, 5},
		{2, 3, 4, 0, 4, 4},
		{-1, -1, 0, 2, 2, 2},
		{2, 5, 0, 3, 2, 3},
		{3, 5, 0, 2, 2, 2},
		{2, 3, -1, 0, -1, -1},
		{2, 3, 0, -1, -1, -1},
		{2, 3, -1, -1, -1, -1},
	} {
		gotMin, gotMax := factors(tc.curMin, tc.curMax, tc.rmin, tc.rmax)
		if gotMin != tc.wantMin || gotMax != tc.wantMax {
			t.Errorf("factors(%d, %d, %d, %d) = %d, %d, want %d, %d", tc.curMin, tc.curMax, tc.rmin, tc.rmax, gotMin, gotMax, tc.wantMin, tc.wantMax)
		}
	}
}

func TestNewest(t *testing.T) {
	var roots []string
	for _, s := range []string{"a", "b", "c"} {
		h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, cid.NewCidV1(cid.Raw, h).String())
	}
	a, b, c := roots[0], roots[1], roots[2]
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	pins := []Pin{
		{CID: a, Name: "docs", Timestamp: at(1)},
		{CID: b, Name: "docs", Timestamp: at(3)},
		{CID: c, Name: "other", Timestamp: at(5)},
	}
	for _, tc := range []struct {
		name, skip string
		want       string
	}{
		{name: "docs", want: b},
		{name: "docs", skip: b, want: a},
		{name: "docs", skip: c, want: b},
		{name: "other", skip: c},
		{name: "none"},
	} {
		skip := cid.Undef
		if tc.skip != "" {
			skip = cid.MustParse(tc.skip)
		}
		got, err := Newest(pins, tc.name, skip)
		if err != nil {
			t.Fatalf("Newest(%q, skip %q): %v", tc.name, tc.skip, err)
		}
		if want := tc.want; got.Defined() != (want != "") || got.Defined() && got.String() != want {
			t.Errorf("Newest(%q, skip %q) = %v, want %q", tc.name, tc.skip, got, want)
		}
	}
}
