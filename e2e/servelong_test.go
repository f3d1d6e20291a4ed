//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
)

// serveProc is a running `ipfs-sync serve`.
type serveProc struct {
	cmd    *exec.Cmd
	addr   string // 127.0.0.1:PORT
	base   string // http://127.0.0.1:PORT
	stderr *syncedBuffer
	done   chan struct{} // closed when the process has exited
}

// startServeProc starts `ipfs-sync serve` as startServe does, but keeps
// the process (for /proc) and its stderr (for a goroutine dump). It runs
// with GOTRACEBACK=all so that SIGQUIT prints every goroutine.
func startServeProc(t *testing.T, repo string) *serveProc {
	t.Helper()
	port := freePort(t)
	p := &serveProc{addr: fmt.Sprintf("127.0.0.1:%d", port), stderr: &syncedBuffer{}, done: make(chan struct{})}
	p.base = "http://" + p.addr
	p.cmd = exec.Command(syncBin, "--repo", repo, "serve", "--listen", p.addr)
	p.cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stderr)
	line, err := r.ReadString('\n')
	if err != nil || !strings.Contains(line, "serving") {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		t.Fatalf("serve did not start: %q %v", line, err)
	}
	go func() {
		io.Copy(p.stderr, r)
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// procSample is what /proc tells of a process. Open pack and index
// files (storeFds) are counted apart: they grow with the store, not with
// requests, and are bounded by the files in the store.
type procSample struct {
	fds, storeFds, threads int
	rssKiB                 int64
}

func (s procSample) String() string {
	return fmt.Sprintf("%d fds (+%d of the store), %d threads, VmRSS %d KiB", s.fds, s.storeFds, s.threads, s.rssKiB)
}

func sampleProc(t *testing.T, pid int) procSample {
	t.Helper()
	var s procSample
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if strings.Contains(target, "/packs/") {
			s.storeFds++
		} else {
			s.fds++
		}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "Threads":
			s.threads, _ = strconv.Atoi(f[0])
		case "VmRSS":
			s.rssKiB, _ = strconv.ParseInt(f[0], 10, 64)
		}
	}
	return s
}

// settle closes the client's idle connections and waits until the
// server's fd count has stopped moving (the server has seen the closes),
// then samples it.
func settle(t *testing.T, client *http.Client, pid int) procSample {
	t.Helper()
	client.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	prev := sampleProc(t, pid)
	for stable := 0; stable < 5 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		s := sampleProc(t, pid)
		if s.fds == prev.fds && s.storeFds == prev.storeFds {
			stable++
		} else {
			stable = 0
		}
		prev = s
	}
	return prev
}

// goroutineHeader matches the first line of a goroutine in a Go
// traceback, "goroutine 7 [IO wait]:" (possibly with "gp=... m=..."
// before the state).
var goroutineHeader = regexp.MustCompile(`^goroutine \d+ [^\n]*?\[([^\],]*)[^\]]*\]:$`)

// goroutineDump stops p with SIGQUIT and returns its goroutines, counted
// by state and first frame outside the runtime. This is the only way to
// see a Go process's goroutines from outside without a debug endpoint;
// the process exits.
func goroutineDump(t *testing.T, p *serveProc) (int, map[string]int) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not exit on SIGQUIT")
	}
	out := p.stderr.String()
	byTop := map[string]int{}
	n := 0
	for _, block := range strings.Split(out, "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		m := goroutineHeader.FindStringSubmatch(lines[0])
		if m == nil {
			continue
		}
		top := ""
		for _, l := range lines[1:] {
			if strings.HasPrefix(l, "\t") {
				continue // file:line
			}
			if strings.HasPrefix(l, "created by ") {
				break // only runtime frames: keep the top one
			}
			if top == "" {
				top = l
			}
			if !strings.HasPrefix(l, "runtime.") && !strings.HasPrefix(l, "internal/") {
				top = l
				break
			}
		}
		if i := strings.LastIndexByte(top, '('); i > 0 {
			top = top[:i]
		}
		byTop[m[1]+": "+top]++
		n++
	}
	if n == 0 {
		t.Fatalf("no goroutine dump on SIGQUIT:\n%s", out)
	}
	return n, byTop
}

// serveState is what the clients ask for; it moves on after each sync.
type serveState struct {
	mu     gosync.Mutex
	root   cid.Cid
	small  cid.Cid // the small/ directory: a CAR of a few hundred KiB
	blocks []cid.Cid
}

func (s *serveState) get() (root, small cid.Cid, blocks []cid.Cid) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.root, s.small, s.blocks
}

// TestServeNoLeak runs one `ipfs-sync serve` through 3,000 requests of
// mixed kinds from 4 concurrent clients (raw blocks, CARs, unknown CIDs,
// malformed paths, and requests abandoned mid-response or mid-request by
// closing the connection), while the served repository is synced five
// times with a changing tree. The server's open fds, threads and VmRSS
// after the rest must not have grown beyond a small slack over a warm-up
// of the same mix; its goroutines, dumped at the end, must be as few as
// those of a server that answered one request of each kind.
func TestServeNoLeak(t *testing.T) {
	total, warmup := 3000, 500
	if testing.Short() {
		total, warmup = 600, 150
	}
	const workers = 4
	dir := t.TempDir()
	src := filepath.Join(dir, "mirror")
	repo := filepath.Join(dir, "repo")
	rng := rand.New(rand.NewPCG(3, 4))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	writeFile := func(rel string, data []byte) {
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// small/: 300 files of 0-4 KiB; big/: two 4 MiB files, so that a CAR
	// of the root (8 MiB) is larger than what the socket buffers take in
	// (~3 MiB measured on loopback with a 4 KiB receive buffer): an
	// abandoned request leaves the server blocked in a write.
	for i := range 300 {
		writeFile(fmt.Sprintf("small/f%03d", i), randBytes(rng.IntN(4097)))
	}
	for i := range 2 {
		writeFile(fmt.Sprintf("big/b%d.deb", i), randBytes(4<<20))
	}
	nextFile := 300
	mutate := func() {
		for range 20 {
			writeFile(fmt.Sprintf("small/f%03d", rng.IntN(nextFile)), randBytes(rng.IntN(4097)))
		}
		for range 10 {
			writeFile(fmt.Sprintf("small/f%03d", nextFile), randBytes(rng.IntN(4097)))
			nextFile++
		}
		for range 5 {
			os.Remove(filepath.Join(src, fmt.Sprintf("small/f%03d", rng.IntN(nextFile))))
		}
		f, err := os.OpenFile(filepath.Join(src, "big", fmt.Sprintf("b%d.deb", rng.IntN(2))), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt(randBytes(64<<10), rng.Int64N(4<<20-64<<10))
		f.Close()
	}

	client := &http.Client{Timeout: time.Minute}
	fetch := func(base, path string) (int, []byte, error) {
		resp, err := client.Get(base + path)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, body, err
	}
	state := &serveState{}
	// load reads the whole DAG under root as a CAR from the server, checks
	// it, and makes root the one clients ask for.
	load := func(base string, root cid.Cid) {
		code, body, err := fetch(base, "/ipfs/"+root.String()+"?format=car")
		if err != nil || code != 200 {
			t.Fatalf("CAR of %s: %d %v", root, code, err)
		}
		blocks := verifyCAR(t, body, root)
		nd, err := mdag.DecodeProtobuf(blocks[root])
		if err != nil {
			t.Fatal(err)
		}
		l, _, err := nd.ResolveLink([]string{"small"})
		if err != nil {
			t.Fatal(err)
		}
		cids := make([]cid.Cid, 0, len(blocks))
		for c := range blocks {
			cids = append(cids, c)
		}
		sort.Slice(cids, func(i, j int) bool { return cids[i].KeyString() < cids[j].KeyString() })
		state.mu.Lock()
		state.root, state.small, state.blocks = root, l.Cid, cids
		state.mu.Unlock()
	}
	syncOnce := func() cid.Cid {
		res := ipfsSync(t, repo, "-q", "sync", src)
		if res.Code != 0 {
			t.Errorf("sync: %s", res)
			return cid.Undef
		}
		return cid.MustParse(oneCID(t, res.Stdout))
	}
	first := syncOnce()
	if !first.Defined() {
		t.FailNow()
	}

	// A control server on the same repository answers one request of each
	// kind, then dumps its goroutines: the count an idle server has.
	ctl := startServeProc(t, repo)
	load(ctl.base, first)

	srv := startServeProc(t, repo)
	pid := srv.cmd.Process.Pid
	start := sampleProc(t, pid)
	load(srv.base, first)

	// kinds, by share of every 100 requests.
	type kind struct {
		name string
		n    int
		do   func(base, addr string, rng *rand.Rand) error
	}
	expect := func(path string, want int, check func([]byte) error) func(string, string, *rand.Rand) error {
		return func(base, _ string, _ *rand.Rand) error {
			code, body, err := fetch(base, path)
			if err != nil {
				return fmt.Errorf("GET %s: %v", path, err)
			}
			if code != want {
				return fmt.Errorf("GET %s: %d, want %d", path, code, want)
			}
			if check != nil {
				return check(body)
			}
			return nil
		}
	}
	var abandoned atomic.Int64
	// abandon sends a request for the root's CAR on a connection with a
	// tiny receive buffer and closes it: after `after` bytes of the
	// answer (mid-body), at once (before the answer), or halfway through
	// the request line itself.
	abandon := func(mode string) func(string, string, *rand.Rand) error {
		return func(_, addr string, _ *rand.Rand) error {
			root, _, _ := state.get()
			d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
				return c.Control(func(fd uintptr) {
					syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
				})
			}}
			conn, err := d.Dial("tcp", addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			req := fmt.Sprintf("GET /ipfs/%s?format=car HTTP/1.1\r\nHost: %s\r\n\r\n", root, addr)
			if mode == "mid-request" {
				req = req[:len(req)/2]
			}
			if _, err := io.WriteString(conn, req); err != nil {
				return err
			}
			if mode == "mid-body" {
				conn.SetReadDeadline(time.Now().Add(30 * time.Second))
				buf := make([]byte, 32<<10)
				if _, err := io.ReadFull(conn, buf); err != nil {
					return fmt.Errorf("abandoned CAR: %v", err)
				}
				if !bytes.HasPrefix(buf, []byte("HTTP/1.1 200")) {
					return fmt.Errorf("abandoned CAR: %q", buf[:min(len(buf), 80)])
				}
			}
			abandoned.Add(1)
			return nil
		}
	}
	kinds := []kind{
		{"raw block", 40, func(base, addr string, rng *rand.Rand) error {
			_, _, blocks := state.get()
			c := blocks[rng.IntN(len(blocks))]
			return expect("/ipfs/"+c.String()+"?format=raw", 200, func(b []byte) error {
				if again, _ := c.Prefix().Sum(b); !again.Equals(c) {
					return fmt.Errorf("raw %s does not hash to its CID", c)
				}
				return nil
			})(base, addr, rng)
		}},
		{"CAR of small/", 15, func(base, addr string, rng *rand.Rand) error {
			_, small, _ := state.get()
			return expect("/ipfs/"+small.String()+"?format=car", 200, nil)(base, addr, rng)
		}},
		{"CAR of the root", 2, func(base, addr string, rng *rand.Rand) error {
			root, _, _ := state.get()
			return expect("/ipfs/"+root.String()+"?format=car&dag-scope=all", 200, nil)(base, addr, rng)
		}},
		{"unknown CID", 12, func(base, addr string, rng *rand.Rand) error {
			c, _ := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x12, MhLength: -1}.Sum([]byte(fmt.Sprint("absent ", rng.Uint64())))
			return expect("/ipfs/"+c.String()+"?format=raw", 404, nil)(base, addr, rng)
		}},
		{"malformed", 12, func(base, addr string, rng *rand.Rand) error {
			return expect(fmt.Sprintf("/ipfs/not-a-cid-%d?format=raw", rng.IntN(1e6)), 400, nil)(base, addr, rng)
		}},
		{"abandoned mid-body", 12, abandon("mid-body")},
		{"abandoned before the answer", 3, abandon("before-answer")},
		{"abandoned mid-request", 1, abandon("mid-request")},
		{"cancelled by the client mid-body", 3, func(base, _ string, _ *rand.Rand) error {
			root, _, _ := state.get()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", base+"/ipfs/"+root.String()+"?format=car", nil)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("CAR: %s", resp.Status)
			}
			if _, err := io.CopyN(io.Discard, resp.Body, 16<<10); err != nil {
				return err
			}
			cancel()
			abandoned.Add(1)
			return nil
		}},
	}
	var plan []int // kind index of each request within a cycle of 100
	for i, k := range kinds {
		for range k.n {
			plan = append(plan, i)
		}
	}
	if len(plan) != 100 {
		t.Fatalf("the mix adds up to %d, not 100", len(plan))
	}

	// One request of each kind to the control server, then its goroutines.
	crng := rand.New(rand.NewPCG(5, 6))
	for _, k := range kinds {
		if err := k.do(ctl.base, ctl.addr, crng); err != nil {
			t.Fatalf("control %s: %v", k.name, err)
		}
	}
	settle(t, client, ctl.cmd.Process.Pid)
	ctlGoroutines, ctlByTop := goroutineDump(t, ctl)

	var done atomic.Int64
	perKind := make([]atomic.Int64, len(kinds))
	// phase makes requests [from, to) on srv from `workers` clients, with
	// a sync of the mutated tree started when each of syncAt is reached;
	// it returns once every request and sync has finished.
	phase := func(from, to int, syncAt ...int) {
		t.Helper()
		var wg gosync.WaitGroup
		next := make(chan int)
		var syncs gosync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(from), uint64(w)))
				for i := range next {
					k := plan[rng.IntN(len(plan))]
					if err := kinds[k].do(srv.base, srv.addr, rng); err != nil {
						t.Errorf("request %d (%s): %v", i, kinds[k].name, err)
					}
					perKind[k].Add(1)
					done.Add(1)
				}
			})
		}
		for i := from; i < to && !t.Failed(); i++ {
			for _, at := range syncAt {
				if i == at {
					syncs.Wait() // one sync at a time, as the lock wants
					mutate()
					syncs.Go(func() {
						if root := syncOnce(); root.Defined() {
							load(srv.base, root)
						}
					})
				}
			}
			next <- i
		}
		close(next)
		wg.Wait()
		syncs.Wait()
	}

	began := time.Now()
	phase(0, warmup, warmup/2)
	warm := settle(t, client, pid)
	t.Logf("serve at start: %v; after %d warm-up requests and 1 sync (%v): %v", start, warmup, time.Since(began).Round(time.Millisecond), warm)
	var syncAt []int
	for i := 1; i <= 4; i++ {
		syncAt = append(syncAt, warmup+i*(total-warmup)/5)
	}
	began = time.Now()
	phase(warmup, total, syncAt...)
	end := settle(t, client, pid)
	t.Logf("after %d more requests and 4 syncs (%v): %v", total-warmup, time.Since(began).Round(time.Millisecond), end)
	var mix []string
	for i, k := range kinds {
		mix = append(mix, fmt.Sprintf("%s %d", k.name, perKind[i].Load()))
	}
	t.Logf("%d requests: %s; %d abandoned", done.Load(), strings.Join(mix, ", "), abandoned.Load())

	if end.fds > warm.fds+5 || end.threads > warm.threads+4 || end.rssKiB > 2*warm.rssKiB {
		t.Errorf("serve grew: after warm-up %v, at the end %v (allowed: fds +5, threads +4, RSS 2x)", warm, end)
	}
	if files, _ := os.ReadDir(filepath.Join(repo, "packs")); end.storeFds > len(files) {
		t.Errorf("serve holds %d pack and index files open, the store has %d", end.storeFds, len(files))
	}
	n, byTop := goroutineDump(t, srv)
	t.Logf("goroutines at the end (SIGQUIT dump): %d %v; a server after one request of each kind: %d", n, byTop, ctlGoroutines)
	if n > ctlGoroutines+4 {
		t.Errorf("%d goroutines at the end, %d in the control server:\n  end: %v\n  control: %v", n, ctlGoroutines, byTop, ctlByTop)
	}
}
