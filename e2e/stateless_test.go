//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"

	"github.com/ipfs-sync/ipfs-sync/internal/cartest"
	"github.com/ipfs-sync/ipfs-sync/internal/mirrorgen"
)

// tap is a reverse proxy in front of a kubo node's RPC API that keeps
// what ipfs-sync sends (the CARs of dag/import) and what it reads
// (block/get), so a test measures the traffic itself.
type tap struct {
	url  string
	mu   gosync.Mutex
	sent [][]byte // dag/import request bodies
	got  []string // CIDs asked for with block/get
	// hold, when set, is an RPC path the tap stops at: it tells hit and
	// holds the request (a dag/import half read) until the client is
	// gone, for the test to kill it there.
	hold string
	hit  chan struct{}
}

func newTap(t *testing.T, api string) *tap {
	t.Helper()
	p := strings.Split(strings.Trim(api, "/"), "/") // /ip4/127.0.0.1/tcp/PORT
	target, err := url.Parse("http://" + p[1] + ":" + p[3])
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	tp := &tap{hit: make(chan struct{}, 1)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tp.mu.Lock()
		hold := tp.hold == r.URL.Path
		tp.mu.Unlock()
		if hold {
			io.CopyN(io.Discard, r.Body, 1<<10)
			tp.hit <- struct{}{}
			<-r.Context().Done()
			return
		}
		switch r.URL.Path {
		case "/api/v0/dag/import":
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			tp.mu.Lock()
			tp.sent = append(tp.sent, append([]byte(r.Header.Get("Content-Type")+"\n"), body...))
			tp.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		case "/api/v0/block/get":
			tp.mu.Lock()
			tp.got = append(tp.got, r.URL.Query().Get("arg"))
			tp.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	tp.url = "http://" + l.Addr().String()
	return tp
}

// take returns what went through since the last take: the blocks sent,
// in the order sent, and the CIDs read.
func (tp *tap) take(t *testing.T) ([]sentBlock, []string) {
	t.Helper()
	tp.mu.Lock()
	sent, got := tp.sent, tp.got
	tp.sent, tp.got = nil, nil
	tp.mu.Unlock()
	var out []sentBlock
	for _, req := range sent {
		ct, body, _ := bytes.Cut(req, []byte("\n"))
		_, params, err := mime.ParseMediaType(string(ct))
		if err != nil {
			t.Fatalf("dag/import Content-Type %q: %v", ct, err)
		}
		part, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).NextPart()
		if err != nil {
			t.Fatal(err)
		}
		br, err := carv2.NewBlockReader(part)
		if err != nil {
			t.Fatal(err)
		}
		for {
			b, err := br.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, sentBlock{cid: b.Cid(), data: b.RawData(), kind: kindOf(t, b.Cid(), b.RawData())})
		}
	}
	return out, got
}

type sentBlock struct {
	cid  cid.Cid
	data []byte
	kind blockKind
}

type blockKind int

const (
	leafBlock  blockKind = iota // file data with no links: a chunk, or a whole small file
	fileNode                    // a file's root or inner node over its chunks
	dirBlock                    // a directory or HAMT shard
	otherBlock                  // a symlink
)

func kindOf(t *testing.T, c cid.Cid, data []byte) blockKind {
	t.Helper()
	if c.Prefix().Codec == cid.Raw {
		return leafBlock
	}
	nd, err := mdag.DecodeProtobuf(data)
	if err != nil {
		t.Fatalf("block %s: %v", c, err)
	}
	fsn, err := ft.FSNodeFromBytes(nd.Data())
	if err != nil {
		t.Fatalf("block %s: %v", c, err)
	}
	switch fsn.Type() {
	case ft.TDirectory, ft.THAMTShard:
		return dirBlock
	case ft.TFile, ft.TRaw:
		if len(nd.Links()) > 0 {
			return fileNode
		}
		return leafBlock
	}
	return otherBlock
}

// freshCheckout copies tree to dst with every file and directory's mtime
// set to now, as a CI job's checkout has them.
func freshCheckout(t *testing.T, tree, dst string) {
	t.Helper()
	copyTree(t, tree, dst)
	now := time.Now()
	err := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, now, now)
	})
	if err != nil {
		t.Fatal(err)
	}
}

type statelessJSON struct {
	Root         string  `json:"root"`
	Previous     *string `json:"previous"`
	PreviousFrom string  `json:"previous_from"`
	Push         struct {
		Previous *string `json:"previous"`
		Blocks   int     `json:"blocks_sent"`
		Bytes    int64   `json:"bytes_sent"`
	} `json:"push"`
}

// TestStatelessRunner is a CI job without a cache: each run starts from
// an empty repository and a fresh checkout (every mtime new), finds the
// previous root at the MFS path on kubo, reads only its directories there
// and sends only what is new. On an unchanged tree it sends no file
// leaves; after a publish cycle at most 1.1 × the changed bytes plus the
// new directory and file-root blocks; its roots are a stateful run's; a
// second run sends nothing.
func TestStatelessRunner(t *testing.T) {
	d := kuboDaemon(t)
	tp := newTap(t, d.api)
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	copyTree(t, tinyTree.get(t), tree)
	flags := []string{"--metadata", "mode", "--name", "mirror"} // the CI recipe: a checkout's mtimes mean nothing

	// ciRun syncs a fresh checkout of tree from an empty repository.
	n := 0
	ciRun := func() (statelessJSON, []sentBlock, []string) {
		t.Helper()
		n++
		src := filepath.Join(dir, fmt.Sprintf("checkout%d", n))
		freshCheckout(t, tree, src)
		repo := filepath.Join(dir, fmt.Sprintf("repo%d", n))
		args := append(append([]string{"--json", "sync"}, flags...), "--api", tp.url, "--to-files", "/mirror", src)
		res := ipfsSync(t, repo, args...)
		if res.Code != 0 {
			t.Fatalf("sync: %s", res)
		}
		var out statelessJSON
		if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
			t.Fatalf("%v in %q", err, res.Stdout)
		}
		sent, got := tp.take(t)
		if len(sent) != out.Push.Blocks {
			t.Fatalf("push says %d blocks sent, kubo was sent %d", out.Push.Blocks, len(sent))
		}
		kuboRun(t, d.path, "dag", "stat", "--offline", out.Root)
		if mfs := strings.TrimSpace(kuboRun(t, d.path, "files", "stat", "--hash", "/mirror")); mfs != out.Root {
			t.Fatalf("/mirror is %s, want %s", mfs, out.Root)
		}
		return out, sent, got
	}
	// statefulRoot is the root a repository that keeps its state gets for
	// the same tree.
	stateRepo := filepath.Join(dir, "stateful")
	statefulRoot := func() string {
		t.Helper()
		res := ipfsSync(t, stateRepo, append(append([]string{"-q", "sync"}, flags...), tree)...)
		if res.Code != 0 {
			t.Fatal(res)
		}
		return oneCID(t, res.Stdout)
	}

	first, _, _ := ciRun()
	if first.Previous != nil {
		t.Fatalf("first run diffed against %s: the node held nothing", *first.Previous)
	}
	if want := statefulRoot(); first.Root != want {
		t.Fatalf("first root %s, a stateful run's is %s", first.Root, want)
	}

	// An unchanged tree, every mtime new.
	again, sent, got := ciRun()
	if again.Previous == nil || *again.Previous != first.Root || again.PreviousFrom == "" {
		t.Fatalf("the run did not diff against the root on the node: previous %v from %q", again.Previous, again.PreviousFrom)
	}
	if again.Root != first.Root {
		t.Fatalf("unchanged tree: root %s, was %s", again.Root, first.Root)
	}
	for _, b := range sent {
		if b.kind == leafBlock {
			t.Errorf("unchanged tree: sent file leaf %s (%d bytes)", b.cid, len(b.data))
		}
	}
	checkFetched(t, d, first.Root, got, true)
	t.Logf("unchanged tree: %d blocks sent, %d read from kubo", len(sent), len(got))

	// A publish cycle.
	cycle, err := mirrorgen.Mutate(tree, mirrorgen.MutateOptions{Seed: 7, Scale: 1})
	if err != nil {
		t.Fatal(err)
	}
	next, sent, got := ciRun()
	if next.Previous == nil || *next.Previous != first.Root {
		t.Fatalf("after a cycle: previous %v, want %s", next.Previous, first.Root)
	}
	if want := statefulRoot(); next.Root != want {
		t.Fatalf("after a cycle: root %s, a stateful run's is %s", next.Root, want)
	}
	var leaves, structure int64
	for _, b := range sent {
		if b.kind == leafBlock {
			leaves += int64(len(b.data))
		} else {
			structure += int64(len(b.data))
		}
	}
	limit := int64(1.1*float64(cycle.ChangedBytes)) + structure
	t.Logf("after a cycle: %d blocks, %d bytes sent (%d in leaves, %d in directory, file-root and symlink blocks); %d changed bytes in %d files; %d blocks read from kubo",
		len(sent), next.Push.Bytes, leaves, structure, cycle.ChangedBytes, cycle.ChangedFiles, len(got))
	if next.Push.Bytes > limit {
		t.Errorf("after a cycle: sent %d bytes, more than 1.1 × %d changed + %d of directory and file-root blocks = %d", next.Push.Bytes, cycle.ChangedBytes, structure, limit)
	}
	checkFetched(t, d, first.Root, got, false)

	cycleSent := sent

	// Run twice: the second sends nothing.
	twice, sent, _ := ciRun()
	if twice.Root != next.Root || len(sent) != 0 {
		t.Fatalf("second run of the same tree: root %s (was %s), %d blocks sent", twice.Root, next.Root, len(sent))
	}

	// The previous root found under the IPNS key instead, and read from
	// kubo's gateway instead of its RPC.
	kuboRun(t, d.path, "name", "publish", "--allow-offline", "/ipfs/"+next.Root)
	for i, how := range [][]string{{"--publish", "self"}, {"--publish", "self", "--from", d.gateway}} {
		repo := filepath.Join(dir, fmt.Sprintf("repo-ipns%d", i))
		src := filepath.Join(dir, fmt.Sprintf("checkout-ipns%d", i))
		freshCheckout(t, tree, src)
		args := append(append(append([]string{"--json", "sync"}, flags...), "--api", tp.url), how...)
		res := ipfsSync(t, repo, append(args, src)...)
		if res.Code != 0 {
			t.Fatalf("sync %v: %s", how, res)
		}
		var out statelessJSON
		if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
			t.Fatalf("%v in %q", err, res.Stdout)
		}
		wantFrom := tp.url
		if len(how) > 2 {
			wantFrom = d.gateway
		}
		sent, got := tp.take(t)
		if out.Previous == nil || *out.Previous != next.Root || out.PreviousFrom != wantFrom || out.Root != next.Root || len(sent) != 0 {
			t.Fatalf("sync %v: previous %v from %q (want %s from %s), root %s, %d blocks sent", how, out.Previous, out.PreviousFrom, next.Root, wantFrom, out.Root, len(sent))
		}
		if len(how) > 2 && len(got) != 0 {
			t.Fatalf("sync %v read %d blocks through the RPC", how, len(got))
		}
	}

	// export --since OLD with OLD only on kubo: the blocks the push sent.
	repo := filepath.Join(dir, "repo-export")
	res := ipfsSync(t, repo, append(append([]string{"-q", "sync"}, flags...), tree)...)
	if res.Code != 0 || oneCID(t, res.Stdout) != next.Root {
		t.Fatalf("sync: %s", res)
	}
	car := filepath.Join(dir, "since.car")
	if res := ipfsSync(t, repo, "export", next.Root, "--since", first.Root, "--api", tp.url, "--car", car); res.Code != 0 {
		t.Fatalf("export --since --api: %s", res)
	}
	exported := map[string]bool{}
	for _, c := range cartest.Read(t, car).CIDs() {
		exported[c] = true
	}
	if len(exported) != len(cycleSent) {
		t.Fatalf("export --since OLD --api wrote %d blocks, the push sent %d", len(exported), len(cycleSent))
	}
	for _, b := range cycleSent {
		if !exported[b.cid.String()] {
			t.Fatalf("export --since OLD --api lacks %s, which the push sent", b.cid)
		}
	}
}

// checkFetched fails unless every block read from kubo is old's root or
// an entry of a directory read (a subdirectory, a file's root), never a
// block below a file's root; with dirsOnly, unless each is a directory.
func checkFetched(t *testing.T, d daemon, old string, got []string, dirsOnly bool) {
	t.Helper()
	linked := map[string]bool{old: true}
	var files []string
	for _, c := range got {
		data := []byte(kuboRun(t, d.path, "block", "get", c))
		k := kindOf(t, cid.MustParse(c), data)
		if k != dirBlock {
			files = append(files, c)
			continue
		}
		nd, err := mdag.DecodeProtobuf(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range nd.Links() {
			linked[l.Cid.String()] = true
		}
	}
	if dirsOnly && len(files) > 0 {
		t.Errorf("read %d blocks that are no directory: %v", len(files), files)
	}
	for _, c := range files {
		if !linked[c] {
			t.Errorf("read %s, which no directory read links: a block below a file's root", c)
		}
	}
}

// TestStatelessKilledAndRerun kills a CI run at each hand-off to kubo (the
// tap holds the request there): while it reads the previous root, midway
// through dag/import, before the pin moves, and before the MFS path is
// replaced. Run again from a fresh checkout and an empty repository, it
// finishes: kubo holds and pins the stateful run's root at the MFS path,
// and a run after that sends nothing.
func TestStatelessKilledAndRerun(t *testing.T) {
	d := kuboDaemon(t)
	tp := newTap(t, d.api)
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	copyTree(t, tinyTree.get(t), tree)
	flags := []string{"--metadata", "mode", "--name", "mirror"}
	n := 0
	start := func() (*exec.Cmd, *bytes.Buffer) {
		t.Helper()
		n++
		src := filepath.Join(dir, fmt.Sprintf("checkout%d", n))
		freshCheckout(t, tree, src)
		args := append(append([]string{"--repo", filepath.Join(dir, fmt.Sprintf("repo%d", n)), "--json", "sync"}, flags...), "--api", tp.url, "--to-files", "/mirror", src)
		cmd := exec.Command(syncBin, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}
	complete := func() statelessJSON {
		t.Helper()
		cmd, out := start()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("sync: %v\n%s", err, out)
		}
		var res statelessJSON
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("%v in %q", err, out)
		}
		tp.take(t)
		return res
	}
	complete() // the root the cycles below start from
	seed := uint64(10)
	for _, at := range []string{"/api/v0/block/get", "/api/v0/dag/import", "/api/v0/pin/update", "/api/v0/files/cp"} {
		t.Run(strings.TrimPrefix(at, "/api/v0/"), func(t *testing.T) {
			seed++
			if _, err := mirrorgen.Mutate(tree, mirrorgen.MutateOptions{Seed: seed, Scale: 1}); err != nil {
				t.Fatal(err)
			}
			res := ipfsSync(t, filepath.Join(dir, "stateful"), append(append([]string{"-q", "sync"}, flags...), tree)...)
			if res.Code != 0 {
				t.Fatal(res)
			}
			want := oneCID(t, res.Stdout)
			tp.mu.Lock()
			tp.hold = at
			tp.mu.Unlock()
			cmd, out := start()
			select {
			case <-tp.hit:
			case <-time.After(cmdTimeout):
				cmd.Process.Kill()
				t.Fatalf("the run never reached %s:\n%s", at, out)
			}
			cmd.Process.Kill()
			cmd.Wait()
			tp.mu.Lock()
			tp.hold = ""
			tp.mu.Unlock()
			tp.take(t)

			again := complete()
			if again.Root != want {
				t.Fatalf("rerun after a kill at %s: root %s, a stateful run's is %s", at, again.Root, want)
			}
			t.Logf("rerun after a kill at %s: %d blocks, %d bytes sent", at, again.Push.Blocks, again.Push.Bytes)
			kuboRun(t, d.path, "dag", "stat", "--offline", want)
			if !strings.Contains(kuboRun(t, d.path, "pin", "ls", "--type", "recursive", want), want) {
				t.Fatalf("%s not pinned", want)
			}
			if mfs := strings.TrimSpace(kuboRun(t, d.path, "files", "stat", "--hash", "/mirror")); mfs != want {
				t.Fatalf("/mirror is %s, want %s", mfs, want)
			}
			if last := complete(); last.Root != want || last.Push.Blocks != 0 {
				t.Fatalf("a run after that: root %s, %d blocks sent", last.Root, last.Push.Blocks)
			}
		})
	}
}

// TestStatelessCluster is a CI job without a cache that hands its roots
// to an IPFS Cluster: the previous root is the newest pin of the ref's
// name there, read through a peer's kubo gateway (--from), since the
// cluster's REST API serves no blocks. After a publish cycle the wire
// carries at most 1.1 × what export --since gives, the root is a stateful
// run's, and a run after that sends nothing.
func TestStatelessCluster(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	proxy := countingProxy(t, strings.TrimPrefix(c.Peers[0].REST, "http://"))
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	copyTree(t, tinyTree.get(t), tree)
	flags := []string{"--metadata", "mode", "--name", "mirror"}
	gw := c.Peers[0].Kubo.gateway
	n := 0
	ciRun := func() (statelessJSON, clusterJSON) {
		t.Helper()
		n++
		src := filepath.Join(dir, fmt.Sprintf("checkout%d", n))
		freshCheckout(t, tree, src)
		args := append(append([]string{"--repo", filepath.Join(dir, fmt.Sprintf("repo%d", n)), "--json", "sync"}, flags...),
			"--cluster", "http://"+proxy.addr, "--from", gw, "--replication-min", "2", "--replication-max", "2", "--wait", "--wait-timeout", "2m", src)
		res := run(t, nil, syncBin, args...)
		if res.Code != 0 {
			t.Fatalf("sync --cluster: %s", res)
		}
		var out statelessJSON
		if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
			t.Fatalf("%v in %q", err, res.Stdout)
		}
		return out, parseCluster(t, res)
	}
	stateRepo := filepath.Join(dir, "stateful")
	statefulRoot := func() string {
		t.Helper()
		res := ipfsSync(t, stateRepo, append(append([]string{"-q", "sync"}, flags...), tree)...)
		if res.Code != 0 {
			t.Fatal(res)
		}
		return oneCID(t, res.Stdout)
	}

	first, _ := ciRun()
	proxy.take(t)
	if want := statefulRoot(); first.Root != want {
		t.Fatalf("first root %s, a stateful run's is %s", first.Root, want)
	}
	publishCycle(t, tree, 3)
	second, cl := ciRun()
	wire := proxy.take(t)
	if second.Previous == nil || *second.Previous != first.Root || second.PreviousFrom != gw {
		t.Fatalf("the run did not diff against the cluster's pin read from %s: previous %v from %q", gw, second.Previous, second.PreviousFrom)
	}
	if cl.Previous == nil || *cl.Previous != first.Root || cl.Pin != "updated" {
		t.Fatalf("the cluster hand-off did not move the pin from %s: %+v", first.Root, cl)
	}
	if want := statefulRoot(); second.Root != want {
		t.Fatalf("after a cycle: root %s, a stateful run's is %s", second.Root, want)
	}
	since := carSize(t, stateRepo, second.Root, first.Root)
	t.Logf("after a cycle: %d blocks, %d bytes on the wire, export --since %d bytes (%.3f×)", cl.Blocks, wire, since, float64(wire)/float64(since))
	if float64(wire) > 1.1*float64(since) {
		t.Fatalf("the update put %d bytes on the wire, export --since is %d: more than 1.1×", wire, since)
	}
	checkClusterPin(t, c, second.Root, 2)

	third, cl := ciRun()
	if wire := proxy.take(t); third.Root != second.Root || cl.Blocks != 0 || wire > 4096 {
		t.Fatalf("a run with nothing new: root %s, %+v, %d bytes on the wire", third.Root, cl, wire)
	}
}

// TestStatelessPinningService is a CI job without a cache whose roots go
// to kubo (--api) and then to a pinning service: with no MFS path or IPNS
// key named, the previous root is the service's newest pinned pin of the
// name, read through a cluster peer's gateway (--from). The push to kubo,
// which pins that root, is the delta; the service gets the new root as a
// new pin and the old one is removed once it is pinned; a run after that
// sends nothing.
//
// The service is a one-peer cluster. With three, each peer's kubo fetches
// the DAG from the origin and from the other two at once, and about one
// run in ten one of them stalls for good: a want stays in its wantlist
// while the origin, which holds every block, has no want from it (kubo
// v0.43.1's bitswap). Three peers behind
// the service are TestPinningService's subject; this test's is the runner.
func TestStatelessPinningService(t *testing.T) {
	c := startCluster(t, 1, clusterOpts{Auth: "mirror:s3cret"})
	token := pinsvcToken(t, c)
	origin := originKubo(t)
	logClusterOnFailure(t, c, origin)
	peerWithOrigin(t, c, origin)
	env := []string{"IPFS_SYNC_PINNING_TOKEN=" + token}
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	copyTree(t, tinyTree.get(t), tree)
	flags := []string{"--metadata", "mode", "--name", "mirror"}
	gw := c.Peers[0].Kubo.gateway
	n := 0
	ciRun := func() (statelessJSON, pinningRun) {
		t.Helper()
		n++
		src := filepath.Join(dir, fmt.Sprintf("checkout%d", n))
		freshCheckout(t, tree, src)
		args := append(append([]string{"--repo", filepath.Join(dir, fmt.Sprintf("repo%d", n)), "--json", "sync"}, flags...),
			"--api", origin.api, "--pinning-service", c.Peers[0].PinSvc, "--from", gw, "--wait", "--wait-timeout", "2m", src)
		p, res := pinningCLI(t, env, []string{token}, 0, args...)
		var out statelessJSON
		if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
			t.Fatalf("%v in %q", err, res.Stdout)
		}
		if p.Pinning.Status != "pinned" || p.Pinning.Root != out.Root {
			t.Fatalf("the service did not pin %s: %+v", out.Root, p.Pinning)
		}
		return out, p
	}
	stateRepo := filepath.Join(dir, "stateful")
	statefulRoot := func() string {
		t.Helper()
		res := ipfsSync(t, stateRepo, append(append([]string{"-q", "sync"}, flags...), tree)...)
		if res.Code != 0 {
			t.Fatal(res)
		}
		return oneCID(t, res.Stdout)
	}

	first, _ := ciRun()
	statefulRoot()
	waitPinnedEverywhere(t, c, first.Root)
	publishCycle(t, tree, 4)
	second, p := ciRun()
	if second.Previous == nil || *second.Previous != first.Root || second.PreviousFrom != gw {
		t.Fatalf("the run did not diff against the service's pin read from %s: previous %v from %q", gw, second.Previous, second.PreviousFrom)
	}
	if want := statefulRoot(); second.Root != want {
		t.Fatalf("after a cycle: root %s, a stateful run's is %s", second.Root, want)
	}
	since := carSize(t, stateRepo, second.Root, first.Root)
	t.Logf("after a cycle: %d blocks, %d bytes pushed to kubo, export --since %d bytes; the service's pin %s", second.Push.Blocks, second.Push.Bytes, since, p.Pinning.Sent)
	if second.Push.Previous == nil || *second.Push.Previous != first.Root || float64(second.Push.Bytes) > 1.1*float64(since) {
		t.Fatalf("the push to kubo was no delta against %s: previous %v, %d bytes for export --since's %d", first.Root, second.Push.Previous, second.Push.Bytes, since)
	}
	if p.Pinning.Sent != "add" || p.Pinning.Replaced == nil || *p.Pinning.Replaced != first.Root || len(p.Pinning.Removed) != 1 {
		t.Fatalf("the service's pin after a cycle: %+v, want %s added in place of %s, removed", p.Pinning, second.Root, first.Root)
	}
	waitPinnedEverywhere(t, c, second.Root)
	waitUnpinned(t, c, first.Root)
	if pins := pinsNamed(t, c, token, "mirror"); len(pins) != 1 || pins[0] != second.Root {
		t.Fatalf("pins named mirror after a cycle: %v, want [%s]", pins, second.Root)
	}

	third, p := ciRun()
	if third.Root != second.Root || third.Push.Blocks != 0 || p.Pinning.Sent != "none" {
		t.Fatalf("a run with nothing new: root %s, %d blocks pushed, the service's pin %s", third.Root, third.Push.Blocks, p.Pinning.Sent)
	}
}
