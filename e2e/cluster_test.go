//go:build e2e

package e2e

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// byteCounter is a TCP proxy on loopback in front of addr that counts the
// bytes its clients send: what a hand-off puts on the wire.
type byteCounter struct {
	addr   string // host:port clients dial
	sent   atomic.Int64
	active atomic.Int64 // connections being relayed
	// rate, when set, limits what each client sends to this many bytes a
	// second: a slow link, on which a kill lands mid-CAR.
	rate int64
}

func countingProxy(t *testing.T, target string) *byteCounter {
	t.Helper()
	return throttledProxy(t, target, 0)
}

func throttledProxy(t *testing.T, target string, rate int64) *byteCounter {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	bc := &byteCounter{addr: l.Addr().String(), rate: rate}
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			if rate > 0 {
				// A small window, so that what a client sends waits in its
				// own socket and dies with it, as on a slow link.
				in.(*net.TCPConn).SetReadBuffer(16 << 10)
			}
			bc.active.Add(1)
			go bc.relay(in, target)
		}
	}()
	return bc
}

func (bc *byteCounter) relay(in net.Conn, target string) {
	defer bc.active.Add(-1)
	defer in.Close()
	out, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(in, out)
		in.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if _, werr := out.Write(buf[:n]); werr != nil {
				break
			}
			bc.sent.Add(int64(n))
			if bc.rate > 0 {
				time.Sleep(time.Duration(int64(n) * int64(time.Second) / bc.rate))
			}
		}
		if err != nil {
			break
		}
	}
	out.(*net.TCPConn).CloseWrite()
	// A client that was killed leaves no one to read the answer.
	out.SetReadDeadline(time.Now().Add(5 * time.Second))
	<-done
}

// take returns the bytes sent since the last take, once every connection
// is closed: a run's bytes are counted when its connections end (a killed
// client's, when the kernel closes them).
func (bc *byteCounter) take(t *testing.T) int64 {
	t.Helper()
	// A killed client's last bytes still reach the cluster, at the rate of
	// the link and of the cluster taking them in.
	deadline := time.Now().Add(time.Minute)
	for bc.active.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections to the cluster still open a minute after the run", bc.active.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return bc.sent.Swap(0)
}

// clusterJSON is the part of --json output a hand-off to a cluster adds.
type clusterJSON struct {
	Root     string   `json:"root"`
	Previous *string  `json:"previous"`
	Blocks   int64    `json:"blocks_sent"`
	Bytes    int64    `json:"bytes_sent"`
	Pin      string   `json:"pin"`
	Pinned   int      `json:"pinned"`
	Want     int      `json:"want"`
	Unpinned []string `json:"unpinned"`
	Peers    []struct {
		Name   string `json:"peername"`
		Status string `json:"status"`
	} `json:"peers"`
}

func parseCluster(t *testing.T, res result) clusterJSON {
	t.Helper()
	var out struct {
		Cluster *clusterJSON `json:"cluster"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil || out.Cluster == nil {
		t.Fatalf("no cluster object in the JSON (%v): %s", err, res)
	}
	return *out.Cluster
}

// checkClusterPin checks that root is the cluster's only pin, PINNED on
// exactly n peers, each of whose kubo has every block of it and no other
// recursive pin of the cluster's; it returns those peers' names.
func checkClusterPin(t *testing.T, c *cluster, root string, n int) []string {
	t.Helper()
	if pins := c.Pinset(t); len(pins) != 1 || pins[0] != root {
		t.Fatalf("cluster pinset %v, want only %s", pins, root)
	}
	var pinned []string
	for name, st := range c.Status(t, root) {
		if st == "pinned" {
			pinned = append(pinned, name)
		}
	}
	if len(pinned) != n {
		t.Fatalf("%s PINNED on %v, want %d peers", root, c.Status(t, root), n)
	}
	holders := c.Holders(t, root)
	if len(holders) != n {
		t.Fatalf("%d kubos hold %s pinned, want %d", len(holders), root, n)
	}
	var names []string
	for _, p := range holders {
		kuboRun(t, p.Kubo.path, "dag", "stat", "--offline", root)
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return names
}

// waitPinnedOn waits up to within until root is PINNED on n peers.
func waitPinnedOn(t *testing.T, c *cluster, root string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := c.Status(t, root)
		pinned := 0
		for _, s := range st {
			if s == "pinned" {
				pinned++
			}
		}
		if pinned >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s PINNED on %v after %v, want %d peers", root, st, within, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitClusterUnpinned waits until no kubo of the cluster has old pinned: the
// cluster unpins on each peer after it drops the pin from its state.
func waitClusterUnpinned(t *testing.T, c *cluster, old string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for len(c.Holders(t, old)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s still pinned on %d kubos a minute after the cluster unpinned it", old, len(c.Holders(t, old)))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// carSize is the size of `export ROOT --since OLD` (of the whole DAG
// without OLD).
func carSize(t *testing.T, repo, root, old string) int64 {
	t.Helper()
	f := filepath.Join(t.TempDir(), "since.car")
	args := []string{"export", root, "--car", f}
	if old != "" {
		args = append(args, "--since", old)
	}
	if res := ipfsSync(t, repo, args...); res.Code != 0 {
		t.Fatal(res)
	}
	fi, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestClusterHandOff syncs a mirror into a three-peer cluster with
// replication factors 1 to 2 (the root ends PINNED on two peers, the
// maximum, though the wait returns at one), then a publish cycle with
// factors 2 to 2: the update sends no
// more than the delta export --since writes (plus 10 %), and the pin moves
// by pin-update (the same two peers hold the new root, every block of it)
// while the old root is unpinned everywhere. A third run sends nothing.
func TestClusterHandOff(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{Auth: "mirror:s3cret"})
	proxy := countingProxy(t, strings.TrimPrefix(c.Peers[0].REST, "http://"))
	url := "http://" + proxy.addr
	dir := t.TempDir()
	src := filepath.Join(dir, "mirror")
	copyTree(t, tinyTree.get(t), src)
	repo := filepath.Join(dir, "repo")
	sync := func(rmin string) clusterJSON {
		t.Helper()
		res := run(t, []string{"IPFS_SYNC_CLUSTER_AUTH=" + c.Auth}, syncBin, "--repo", repo, "--json", "sync", "--name", "mirror",
			"--cluster", url, "--replication-min", rmin, "--replication-max", "2", "--wait", "--wait-timeout", "2m", src)
		if res.Code != 0 {
			t.Fatalf("sync --cluster: %s", res)
		}
		return parseCluster(t, res)
	}

	first := sync("1")
	proxy.take(t)
	if first.Pin != "added" || first.Previous != nil || first.Pinned < 1 || first.Want != 1 {
		t.Fatalf("first hand-off: %+v", first)
	}
	waitPinnedOn(t, c, first.Root, 2, 2*time.Minute)
	holders := checkClusterPin(t, c, first.Root, 2)

	publishCycle(t, src, 1)
	second := sync("2")
	wire := proxy.take(t)
	if second.Pin != "updated" || second.Previous == nil || *second.Previous != first.Root || second.Pinned != 2 {
		t.Fatalf("second hand-off did not move the pin from %s: %+v", first.Root, second)
	}
	since := carSize(t, repo, second.Root, first.Root)
	t.Logf("update: %d blocks, %d bytes on the wire, export --since %d bytes (%.3f×)", second.Blocks, wire, since, float64(wire)/float64(since))
	if float64(wire) > 1.1*float64(since) {
		t.Fatalf("the update put %d bytes on the wire, export --since is %d: more than 1.1×", wire, since)
	}
	if got := checkClusterPin(t, c, second.Root, 2); !slices.Equal(got, holders) {
		t.Fatalf("new root on %v, the old one was on %v: pin-update keeps the allocations", got, holders)
	}
	if !slices.Equal(second.Unpinned, []string{first.Root}) {
		t.Fatalf("unpinned %v, want [%s]", second.Unpinned, first.Root)
	}
	waitClusterUnpinned(t, c, first.Root)

	third := sync("2")
	if wire := proxy.take(t); third.Pin != "kept" || third.Blocks != 0 || wire > 4096 {
		t.Fatalf("a run with nothing new: %+v, %d bytes on the wire", third, wire)
	}
}

// TestKillClusterHandOff kills push --cluster at random moments, over
// publish cycles and through a 1 MB/s link, until 20 kills have landed
// mid-run, at least 3 of them between the send and the pin. After each
// cycle's run that finishes, the cluster's only pin is that cycle's root,
// PINNED and complete on two peers; no run puts more than one CAR of the
// delta on the wire (the one a killed run was sending), and a run after
// the cycle's finished one sends nothing.
func TestKillClusterHandOff(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	// At 1 MB/s a cycle's CAR (about 1.2 MB) is on the wire for a good
	// part of a run, so kills land during the send as well as around it.
	proxy := throttledProxy(t, strings.TrimPrefix(c.Peers[0].REST, "http://"), 1e6)
	_, src, repo, prev := syncedTiny(t, "--name", "m")
	push := func(root string) []string {
		return []string{"--repo", repo, "--json", "push", root, "--name", "m", "--cluster", "http://" + proxy.addr,
			"--replication-min", "2", "--replication-max", "2", "--wait-timeout", "2m"}
	}
	// The whole first root goes straight to the peer, not through the
	// slow link; the cycles find its pin there by name.
	if res := ipfsSync(t, repo, "push", prev, "--name", "m", "--cluster", c.Peers[0].REST, "--replication-min", "2", "--replication-max", "2"); res.Code != 0 {
		t.Fatal(res)
	}
	checkClusterPin(t, c, prev, 2)

	// The kills land within three quarters of the time a whole update
	// takes, measured on the first cycle's, so that most land mid-run.
	var window time.Duration
	rng := rand.New(rand.NewPCG(7, 60))
	landed, runs, midSend := 0, 0, 0
	for cycle := uint64(1); landed < 20; cycle++ {
		if cycle > 25 {
			t.Fatalf("25 cycles, only %d kills landed", landed)
		}
		publishCycle(t, src, cycle)
		res := ipfsSync(t, repo, "-q", "sync", "--name", "m", src)
		if res.Code != 0 {
			t.Fatal(res)
		}
		root := oneCID(t, res.Stdout)
		// One CAR, and the requests around it (the status polls of the
		// wait among them), within the 10 % TestClusterHandOff allows.
		car := carSize(t, repo, root, prev) * 11 / 10
		proxy.take(t)
		if window == 0 {
			start := time.Now()
			if res := run(t, nil, syncBin, push(root)...); res.Code != 0 {
				t.Fatal(res)
			}
			window = time.Since(start) * 3 / 4
			if sent := proxy.take(t); sent > car {
				t.Fatalf("an update sent %d bytes, the delta CAR and its requests may be %d", sent, car)
			}
		} else {
			n := 0
			killLoop(t, rng, 20-landed, window, push(root), func() {
				sent := proxy.take(t)
				if sent > car {
					t.Fatalf("a killed run sent %d bytes, the delta CAR and its requests may be %d", sent, car)
				}
				// Past the listing, with the CAR sent or on its way, and
				// the pin not moved: the next run must send it again.
				if sent > 4096 && !slices.Contains(c.Pinset(t), root) {
					midSend++
				}
				n++
			}, &landed, &runs)
			// The loop's last run ended on its own, or the next one does.
			if sent := proxy.take(t); sent > car {
				t.Fatalf("the run after %d kills sent %d bytes, the delta CAR and its requests may be %d", n, sent, car)
			}
			if res := run(t, nil, syncBin, push(root)...); res.Code != 0 {
				t.Fatalf("push after %d kills: %s", n, res)
			}
			if sent := proxy.take(t); sent > car {
				t.Fatalf("the run after %d kills sent %d bytes, the delta CAR and its requests may be %d", n, sent, car)
			}
		}
		checkClusterPin(t, c, root, 2)
		waitClusterUnpinned(t, c, prev)
		again := parseCluster(t, run(t, nil, syncBin, push(root)...))
		if sent := proxy.take(t); again.Blocks != 0 || again.Pin != "kept" || sent > 4096 {
			t.Fatalf("a run after the cycle's hand-off finished: %+v, %d bytes on the wire", again, sent)
		}
		prev = root
	}
	requireLanded(t, landed, runs)
	if midSend < 3 {
		t.Fatalf("only %d of %d kills landed between the send and the pin", midSend, landed)
	}
	t.Logf("%d kills landed between the send and the pin", midSend)
}

// TestClusterSyncNoWait runs sync --cluster from cron's point of view, not
// waiting for the peers: each cycle's hand-off unpins the name's roots
// older than the previous one (PINNED by then), so the cluster holds two
// roots of the name, not one per cycle; a push that waits leaves one, and
// --keep-previous leaves the previous one.
func TestClusterSyncNoWait(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	_, src, repo, _ := syncedTiny(t, "--name", "m")
	var roots []string
	for cycle := uint64(1); cycle <= 3; cycle++ {
		publishCycle(t, src, cycle)
		res := ipfsSync(t, repo, "--json", "sync", "--name", "m", "--cluster", c.Peers[1].REST, src)
		if res.Code != 0 {
			t.Fatalf("sync --cluster: %s", res)
		}
		h := parseCluster(t, res)
		roots = append(roots, h.Root)
		waitPinnedEverywhere(t, c, h.Root)
		waitPinset(t, c, roots[max(0, len(roots)-2):])
	}
	last := roots[len(roots)-1]
	res := ipfsSync(t, repo, "--json", "push", last, "--name", "m", "--cluster", c.Peers[2].REST, "--keep-previous")
	if res.Code != 0 {
		t.Fatalf("push --keep-previous: %s", res)
	}
	if h := parseCluster(t, res); h.Pin != "kept" || len(h.Unpinned) != 0 || len(c.Pinset(t)) != 2 {
		t.Fatalf("push --keep-previous of a pinned root: %+v, pinset %v", h, c.Pinset(t))
	}
	res = ipfsSync(t, repo, "--json", "push", last, "--name", "m", "--cluster", c.Peers[2].REST)
	if res.Code != 0 {
		t.Fatalf("push: %s", res)
	}
	waitPinset(t, c, []string{last})
	checkClusterPin(t, c, last, 3)
	waitClusterUnpinned(t, c, roots[len(roots)-2])
}

// waitPinset waits until the first peer's view of the cluster's state
// holds exactly roots: a change made through another peer reaches it
// through the CRDT's broadcast, a moment later.
func waitPinset(t *testing.T, c *cluster, roots []string) {
	t.Helper()
	want := slices.Sorted(slices.Values(roots))
	deadline := time.Now().Add(30 * time.Second)
	for {
		pins := c.Pinset(t)
		slices.Sort(pins)
		if slices.Equal(pins, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pinset %v 30 s on, want %v", pins, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestClusterEmptyRunner hands a publish cycle to the cluster from a
// repository that keeps nothing between runs (a CI runner): the previous
// root is the name's pin in the cluster, its blocks read through a peer's
// gateway (--from), and only the delta goes on the wire.
func TestClusterEmptyRunner(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	proxy := countingProxy(t, strings.TrimPrefix(c.Peers[0].REST, "http://"))
	_, src, repo, first := syncedTiny(t, "--name", "m")
	if res := ipfsSync(t, repo, "push", first, "--name", "m", "--cluster", c.Peers[0].REST); res.Code != 0 {
		t.Fatal(res)
	}
	publishCycle(t, src, 1)
	fresh := filepath.Join(t.TempDir(), "repo")
	res := ipfsSync(t, fresh, "--json", "sync", "--name", "m", "--cluster", "http://"+proxy.addr, "--from", c.Peers[1].Kubo.gateway, "--wait", src)
	if res.Code != 0 {
		t.Fatalf("sync --cluster --from on an empty repository: %s", res)
	}
	h := parseCluster(t, res)
	wire := proxy.take(t)
	if root := oneCID(t, ipfsSync(t, repo, "-q", "sync", "--name", "m", src).Stdout); root != h.Root {
		t.Fatalf("the empty runner synced %s, the repository %s", h.Root, root)
	}
	since := carSize(t, repo, h.Root, first)
	t.Logf("empty runner: %d blocks, %d bytes on the wire, export --since %d bytes", h.Blocks, wire, since)
	if h.Pin != "updated" || h.Previous == nil || *h.Previous != first || float64(wire) > 1.1*float64(since) {
		t.Fatalf("empty runner's hand-off: %+v, %d bytes on the wire, export --since %d", h, wire, since)
	}
	waitPinset(t, c, []string{h.Root})
	checkClusterPin(t, c, h.Root, 3)
}

// TestClusterWaitTimeout: a sync whose wait for the peers runs out exits 6
// with the root recorded and printed, each peer's status in --json, and
// the previous root still pinned; the same hand-off run again sends
// nothing, waits, and unpins the previous root.
func TestClusterWaitTimeout(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	_, src, repo, first := syncedTiny(t, "--name", "m")
	if res := ipfsSync(t, repo, "push", first, "--name", "m", "--cluster", c.Peers[0].REST); res.Code != 0 {
		t.Fatal(res)
	}
	publishCycle(t, src, 1)
	// Two peers fetch the new blocks from the first before they can pin
	// them: nothing is PINNED on all three a nanosecond after the pin.
	res := ipfsSync(t, repo, "--json", "sync", "--name", "m", "--cluster", c.Peers[0].REST,
		"--replication-min", "3", "--wait", "--wait-timeout", "1ns", src)
	if res.Code != 6 {
		t.Fatalf("sync whose wait ran out: want exit 6, got %s", res)
	}
	h := parseCluster(t, res)
	if h.Pin != "updated" || h.Pinned >= h.Want || len(h.Peers) != 3 || len(h.Unpinned) != 0 {
		t.Fatalf("hand-off whose wait ran out: %+v", h)
	}
	if pins := c.Pinset(t); !slices.Contains(pins, first) || !slices.Contains(pins, h.Root) {
		t.Fatalf("pinset %v, want the previous root %s and the new %s", pins, first, h.Root)
	}
	res = ipfsSync(t, repo, "--json", "push", h.Root, "--name", "m", "--cluster", c.Peers[0].REST)
	if res.Code != 0 {
		t.Fatalf("push after the timeout: %s", res)
	}
	if again := parseCluster(t, res); again.Pin != "kept" || again.Blocks != 0 || !slices.Equal(again.Unpinned, []string{first}) {
		t.Fatalf("push after the timeout: %+v", again)
	}
	checkClusterPin(t, c, h.Root, 3)
	waitClusterUnpinned(t, c, first)
}

// TestClusterUsage: mistakes in the cluster flags are usage errors (exit
// 2), found before anything runs.
func TestClusterUsage(t *testing.T) {
	_, src, repo, root := syncedTiny(t)
	for _, args := range [][]string{
		{"sync", "--replication-min", "2", src},
		{"sync", "--keep-previous", src},
		{"push", root, "--cluster", "ftp://127.0.0.1:9094"},
		{"push", root, "--cluster", "http://127.0.0.1:9094", "--replication-min", "3", "--replication-max", "2"},
		{"push", root, "--cluster", "http://127.0.0.1:9094", "--replication-min", "-2"},
		{"push", root, "--cluster", "http://127.0.0.1:9094", "--replication-min", "-1", "--replication-max", "2"},
		{"push", root, "--cluster", "http://127.0.0.1:9094", "--wait-timeout", "0s"},
	} {
		if res := ipfsSync(t, repo, args...); res.Code != 2 {
			t.Errorf("ipfs-sync %s: want exit 2, got %s", strings.Join(args, " "), res)
		}
	}
}
