package push

// These tests hold what needs no kubo daemon: the address forms --api
// accepts, the requests each step sends, how kubo's answers and errors
// map to Go errors, and when the pin moves or is added. The server is
// net/http/httptest answering in kubo's RPC wire format (go-ipfs-cmds
// v0.16.1 http/responseemitter.go: an error before any output is status
// 500, or 400 for a client error, with a JSON cmds.Error body; an error
// after output starts is the X-Stream-Error trailer); a message whose
// wording Pin depends on is copied from boxo v0.43.0. What kubo does with
// the blocks, pins and MFS paths is e2e's TestPushToKubo and TestKillPush,
// against a real daemon.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	gosync "sync"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func TestAPIURL(t *testing.T) {
	tests := []struct {
		api, want, err string
	}{
		{"http://127.0.0.1:5001", "http://127.0.0.1:5001", ""},
		{"http://127.0.0.1:5001/", "http://127.0.0.1:5001", ""},
		{"https://kubo.example:443/rpc/", "https://kubo.example:443/rpc", ""},
		{"http://127.0.0.1:5001/?x=1#f", "http://127.0.0.1:5001", ""},
		{"/ip4/127.0.0.1/tcp/5001", "http://127.0.0.1:5001", ""},
		{"/ip4/127.0.0.1/tcp/5001/http", "http://127.0.0.1:5001", ""},
		{"/ip6/::1/tcp/5001", "http://[::1]:5001", ""},
		{"/dns4/kubo.example/tcp/5001", "http://kubo.example:5001", ""},
		{"/ip4/127.0.0.1/udp/5001", "", "want /ip4/HOST/tcp/PORT"},
		{"/ip4/127.0.0.1", "", "want /ip4/HOST/tcp/PORT"},
		{"127.0.0.1:5001", "", "want http(s)://HOST:PORT"},
		{"ftp://127.0.0.1:5001", "", "want http(s)://HOST:PORT"},
		{"http://", "", "want http(s)://HOST:PORT"},
	}
	for _, tt := range tests {
		k, err := NewKubo(tt.api)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: %v, want an error saying %q", tt.api, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("%q: %v", tt.api, err)
		case tt.err == "" && k.URL() != tt.want:
			t.Errorf("%q: %s, want %s", tt.api, k.URL(), tt.want)
		}
	}
}

// rpcCall is one request the server received.
type rpcCall struct {
	cmd  string // e.g. pin/update
	args url.Values
	car  []byte // dag/import's file part
}

// rpcServer answers /api/v0/CMD as set (default: kubo's success, an
// empty JSON object) and records each call.
type rpcServer struct {
	t   *testing.T
	url string

	mu     gosync.Mutex
	answer map[string]func(w http.ResponseWriter)
	calls  []rpcCall
}

func newRPCServer(t *testing.T) *rpcServer {
	s := &rpcServer{t: t, answer: map[string]func(http.ResponseWriter){}}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *rpcServer) serve(w http.ResponseWriter, r *http.Request) {
	cmd, ok := strings.CutPrefix(r.URL.Path, "/api/v0/")
	if r.Method != http.MethodPost || !ok {
		// kubo's RPC refuses anything but POST under /api/v0.
		http.Error(w, "405 - Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	c := rpcCall{cmd: cmd, args: r.URL.Query()}
	if cmd == "dag/import" {
		c.car = s.importedCAR(r)
	}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	a := s.answer[cmd]
	s.mu.Unlock()
	if a != nil {
		a(w)
		return
	}
	io.WriteString(w, "{}\n")
}

// importedCAR is the "file" part of a multipart dag/import body, as
// kubo reads it (nil when the body is not one).
func (s *rpcServer) importedCAR(r *http.Request) []byte {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		s.t.Errorf("dag/import with Content-Type %q", r.Header.Get("Content-Type"))
		return nil
	}
	part, err := multipart.NewReader(r.Body, params["boundary"]).NextPart()
	if err != nil || part.FormName() != "file" {
		s.t.Errorf("dag/import without a file part: %v", err)
		return nil
	}
	car, err := io.ReadAll(part)
	if err != nil {
		return nil
	}
	return car
}

// set makes answer the answer to cmd (nil: success).
func (s *rpcServer) set(cmd string, answer func(http.ResponseWriter)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer[cmd] = answer
}

// forget drops the calls recorded so far.
func (s *rpcServer) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

func (s *rpcServer) cmds() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.calls {
		out = append(out, c.cmd)
	}
	return out
}

func (s *rpcServer) call(cmd string) rpcCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.calls {
		if c.cmd == cmd {
			return c
		}
	}
	s.t.Fatalf("no %s call in %v", cmd, s.calls)
	return rpcCall{}
}

func (s *rpcServer) kubo() *Kubo {
	k, err := NewKubo(s.url)
	if err != nil {
		s.t.Fatal(err)
	}
	return k
}

// cmdsError answers as go-ipfs-cmds does for an error before any output:
// a cmds.Error, whose Code is 1 (ErrClient) for a 400.
func cmdsError(status int, msg string) func(http.ResponseWriter) {
	code := 0
	if status == http.StatusBadRequest {
		code = 1
	}
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(struct {
			Message string
			Code    int
			Type    string
		}{msg, code, "error"})
	}
}

// streamError answers as go-ipfs-cmds does for an error after output
// started: 200, the output, and the error in the trailer.
func streamError(output, msg string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Trailer", "X-Stream-Error")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, output)
		w.Header().Set("X-Stream-Error", msg)
	}
}

func answerWith(status int, body string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// TestErrors: each shape of failure kubo (or a proxy in front of it)
// answers is an error that says which endpoint failed and kubo's words.
func TestErrors(t *testing.T) {
	tests := []struct {
		name   string
		answer func(http.ResponseWriter)
		kubo   string // the *Error's Message
		other  string // in an error that is no *Error
	}{
		// boxo keystore's ErrNoSuchKey: --publish with a key kubo lacks.
		{"an error before output", cmdsError(500, "no key by the given name was found"), "no key by the given name was found", ""},
		{"a client error", cmdsError(400, "invalid encoding: yaml"), "invalid encoding: yaml", ""},
		{"an error after output", streamError(`{"Name":"k51","Value":"/ipfs/bafy"}`+"\n", "context canceled"), "context canceled", ""},
		{"not kubo's JSON: the status and body", answerWith(http.StatusBadGateway, "upstream down\n"), "502 Bad Gateway: upstream down", ""},
		{"JSON without a message: the status and body", answerWith(http.StatusNotFound, `{"error":"no route"}`), `404 Not Found: {"error":"no route"}`, ""},
		{"an answer that is not JSON", answerWith(http.StatusOK, "Published to k51"), "", `unexpected answer "Published to k51"`},
		{"success", answerWith(http.StatusOK, `{"Name":"k51","Value":"/ipfs/bafy"}`), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRPCServer(t)
			s.set("name/publish", tt.answer)
			name, err := s.kubo().Publish(t.Context(), testCid("root"), "mirror")
			var ke *Error
			switch {
			case tt.other != "":
				if err == nil || errors.As(err, &ke) || !strings.Contains(err.Error(), tt.other) {
					t.Fatalf("%v, want an error saying %s", err, tt.other)
				}
			case tt.kubo == "":
				if err != nil || name != "k51" {
					t.Fatalf("Publish: %q, %v; want k51", name, err)
				}
			case !errors.As(err, &ke):
				t.Fatalf("%v (%T), want a *push.Error", err, err)
			case ke.Message != tt.kubo || ke.Endpoint != s.url+"/api/v0/name/publish":
				t.Fatalf("Error{%q, %q}, want Message %q from %s/api/v0/name/publish", ke.Endpoint, ke.Message, tt.kubo, s.url)
			}
		})
	}
}

// TestUnreachable: a node that does not answer is an error naming it.
func TestUnreachable(t *testing.T) {
	s := httptest.NewServer(http.NotFoundHandler())
	addr := s.URL
	s.Close()
	k, err := NewKubo(addr)
	if err != nil {
		t.Fatal(err)
	}
	err = k.Pin(t.Context(), cid.Undef, testCid("root"))
	var ke *Error
	if err == nil || errors.As(err, &ke) || !strings.Contains(err.Error(), addr+"/api/v0/pin/add") {
		t.Fatalf("pin on a closed port: %v", err)
	}
}

// TestPinDecisions: a first push pins; a later one moves the pin from the
// previous root (pin/update, unpinning it), falling back to pinning when
// kubo says the previous root is not pinned (a push killed after kubo
// moved the pin, before the new root was recorded); any other failure of
// the move is the push's error.
func TestPinDecisions(t *testing.T) {
	old, root := testCid("old"), testCid("new")
	// boxo v0.43.0 pinning/pinner/dspinner/pin.go, Update; ErrNotPinned
	// (pinning/pinner/pin.go) is the other wording Pin accepts.
	const notPinned = "'from' cid was not recursively pinned already"
	tests := []struct {
		name   string
		old    cid.Cid
		update func(http.ResponseWriter)
		cmds   []string
		err    string
	}{
		{"first push pins", cid.Undef, nil, []string{"pin/add"}, ""},
		{"the same root again pins", root, nil, []string{"pin/add"}, ""},
		{"a later push moves the pin", old, nil, []string{"pin/update"}, ""},
		{"the previous root not pinned: pin", old, cmdsError(500, notPinned), []string{"pin/update", "pin/add"}, ""},
		{"the previous root not pinned, boxo's ErrNotPinned: pin", old, cmdsError(500, "not pinned or pinned indirectly"), []string{"pin/update", "pin/add"}, ""},
		{"another failure of the move", old, cmdsError(500, "context deadline exceeded"), []string{"pin/update"}, "context deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRPCServer(t)
			if tt.update != nil {
				s.set("pin/update", tt.update)
			}
			err := s.kubo().Pin(t.Context(), tt.old, root)
			if (err != nil) != (tt.err != "") || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Pin: %v, want error %q", err, tt.err)
			}
			if got := s.cmds(); !slices.Equal(got, tt.cmds) {
				t.Fatalf("calls %v, want %v", got, tt.cmds)
			}
			want := map[string]url.Values{
				"pin/update": {"arg": {old.String(), root.String()}, "unpin": {"true"}},
				"pin/add":    {"arg": {root.String()}, "recursive": {"true"}},
			}
			for _, cmd := range tt.cmds {
				if got := s.call(cmd).args; !equalArgs(got, want[cmd]) {
					t.Errorf("%s with %v, want %v", cmd, got, want[cmd])
				}
			}
		})
	}
}

// TestRequests: the arguments each step sends, in kubo's names.
func TestRequests(t *testing.T) {
	root := testCid("root")
	tests := []struct {
		name string
		do   func(context.Context, *Kubo) error
		cmds []string
		args []url.Values
	}{
		{"publish", func(ctx context.Context, k *Kubo) error { _, err := k.Publish(ctx, root, "mirror"); return err },
			[]string{"name/publish"},
			[]url.Values{{"arg": {"/ipfs/" + root.String()}, "key": {"mirror"}, "allow-offline": {"true"}}}},
		{"to-files replaces the path", func(ctx context.Context, k *Kubo) error { return k.ToFiles(ctx, root, "/mirrors/debian") },
			[]string{"files/rm", "files/cp"},
			[]url.Values{
				{"arg": {"/mirrors/debian"}, "recursive": {"true"}, "force": {"true"}},
				{"arg": {"/ipfs/" + root.String(), "/mirrors/debian"}, "parents": {"true"}},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRPCServer(t)
			if err := tt.do(t.Context(), s.kubo()); err != nil {
				t.Fatal(err)
			}
			if got := s.cmds(); !slices.Equal(got, tt.cmds) {
				t.Fatalf("calls %v, want %v", got, tt.cmds)
			}
			for i, cmd := range tt.cmds {
				if got := s.call(cmd).args; !equalArgs(got, tt.args[i]) {
					t.Errorf("%s with %v, want %v", cmd, got, tt.args[i])
				}
			}
		})
	}
}

// TestImport: the CAR goes as the file part of a multipart body, its
// roots not pinned (the pin moves once the DAG is whole); a CAR that
// cannot be written fails the import with its cause.
func TestImport(t *testing.T) {
	s := newRPCServer(t)
	// kubo v0.43.1 core/commands/dag: one object per root, then the stats.
	s.set("dag/import", answerWith(http.StatusOK, `{"Stats":{"BlockCount":1,"BlockBytesCount":3}}`+"\n"))
	k := s.kubo()
	if err := k.Import(t.Context(), func(w io.Writer) error { _, err := io.WriteString(w, "car"); return err }); err != nil {
		t.Fatal(err)
	}
	c := s.call("dag/import")
	if want := (url.Values{"pin-roots": {"false"}, "stats": {"true"}}); !equalArgs(c.args, want) {
		t.Errorf("dag/import with %v, want %v", c.args, want)
	}
	if string(c.car) != "car" {
		t.Errorf("kubo received %q, want the CAR", c.car)
	}

	cut := errors.New("block bafy...: not found")
	err := k.Import(t.Context(), func(w io.Writer) error {
		io.WriteString(w, "partial")
		return cut
	})
	if err == nil || !strings.Contains(err.Error(), cut.Error()) {
		t.Fatalf("import of a CAR cut short: %v, want its cause", err)
	}
}

func equalArgs(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// testCid is a raw CIDv1 of s.
func testCid(s string) cid.Cid {
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

// TestOrigin: the addresses a pinning service is given are kubo's id
// Addresses as kubo lists them; Connect dials one peer per swarm/connect
// call (kubo stops at the first peer it cannot reach), skips an address
// without its peer, and still tries every peer when one fails.
func TestOrigin(t *testing.T) {
	const a, b = "12D3KooWA", "12D3KooWB"
	s := newRPCServer(t)
	s.set("id", answerWith(http.StatusOK, `{"ID":"`+a+`","Addresses":["/ip4/127.0.0.1/tcp/4001/p2p/`+a+`","/ip4/127.0.0.1/udp/4001/quic-v1/p2p/`+a+`"]}`+"\n"))
	addrs, err := s.kubo().Addrs(t.Context())
	if want := []string{"/ip4/127.0.0.1/tcp/4001/p2p/" + a, "/ip4/127.0.0.1/udp/4001/quic-v1/p2p/" + a}; err != nil || !slices.Equal(addrs, want) {
		t.Fatalf("Addrs: %q, %v; want %q", addrs, err, want)
	}
	delegates := []string{"/ip4/127.0.0.2/tcp/4001/p2p/" + a, "/ip4/127.0.0.3/tcp/4001", "/ip4/127.0.0.4/tcp/4001/p2p/" + b, "/ip6/::1/tcp/4001/p2p/" + a}
	for _, fail := range []bool{false, true} {
		s.forget()
		if fail {
			s.set("swarm/connect", cmdsError(http.StatusInternalServerError, "connect "+a+" failure: dial backoff"))
		}
		err := s.kubo().Connect(t.Context(), delegates)
		if got := s.cmds(); !slices.Equal(got, []string{"swarm/connect", "swarm/connect"}) {
			t.Fatalf("fail=%v: calls %v, want one swarm/connect per peer", fail, got)
		}
		s.mu.Lock()
		first, second := s.calls[0].args["arg"], s.calls[1].args["arg"]
		s.mu.Unlock()
		if !slices.Equal(first, []string{delegates[0], delegates[3]}) || !slices.Equal(second, []string{delegates[2]}) {
			t.Errorf("fail=%v: swarm/connect %q then %q, want %s's two addresses then %s's", fail, first, second, a, b)
		}
		var ke *Error
		if fail != (err != nil) || (fail && (!errors.As(err, &ke) || !strings.Contains(ke.Message, "dial backoff"))) {
			t.Errorf("fail=%v: %v", fail, err)
		}
	}
}
