//go:build e2e

package e2e

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// An IPFS Cluster on loopback for the tests that hand roots to one: n kubo
// daemons, online and peered with each other (bitswap is how an allocated
// peer fetches what another peer's kubo holds), and n ipfs-cluster-service
// peers, one per kubo, CRDT consensus with one secret, every peer trusted,
// all bootstrapped to the first. `make e2e` builds the cluster binaries in
// e2e/clustertools and passes them in IPFS_CLUSTER_SERVICE_BIN and
// IPFS_CLUSTER_CTL_BIN; a test that starts a cluster without them fails.

// cluster is a running cluster; its peers stop, then their kubos, when the
// test ends.
type cluster struct {
	Peers []clusterPeer
	// Auth is the REST and Pinning Service APIs' basic-auth "user:password",
	// empty when they take requests without credentials.
	Auth       string
	pinTimeout string
	keepFailed bool
	ctl        string
}

// clusterPeer is one peer and the kubo it pins on.
type clusterPeer struct {
	Name string // peername, also the key of a pin's status per peer
	ID   string // cluster peer ID
	Dir  string // its config directory (service.json, identity.json, log)
	// REST is the cluster REST API, http://127.0.0.1:PORT, without
	// credentials.
	REST string
	// PinSvc is the cluster's Pinning Service API, http://127.0.0.1:PORT.
	PinSvc string
	Kubo   daemon
}

// URL is the first peer's REST API with the credentials in it, as a user
// passes it to --cluster.
func (c *cluster) URL() string {
	return withAuth(c.Peers[0].REST, c.Auth)
}

// PinSvcURL is the first peer's Pinning Service API with the credentials
// in it.
func (c *cluster) PinSvcURL() string {
	return withAuth(c.Peers[0].PinSvc, c.Auth)
}

func withAuth(u, auth string) string {
	if auth == "" {
		return u
	}
	return strings.Replace(u, "http://", "http://"+auth+"@", 1)
}

// clusterOpts adjust a cluster before it starts.
type clusterOpts struct {
	// Auth, "user:password", protects the REST and Pinning Service APIs.
	Auth string
	// PinTimeout, a Go duration, is how long a peer's kubo may fetch
	// nothing before its pin fails (ipfs_connector.ipfshttp.pin_timeout);
	// 20s unless set.
	PinTimeout string
	// KeepFailed leaves a failed pin failed, for tests of a pin that
	// cannot complete. Otherwise each peer pins anew what failed every 5
	// seconds (cluster.pin_recover_interval), as docs/mirror-network.md
	// advises: two or three kubos fetching one DAG from the same peers
	// stall for good in about one pin in ten (a want left in a wantlist
	// that no peer holding the block is asked for again: kubo v0.43.1's
	// bitswap), and a pin asked anew fetches the rest.
	KeepFailed bool
}

// startCluster starts an n-peer cluster and returns once every peer sees
// n peers and has every peer's freespace metric, so that a pin can be
// allocated on any of them.
func startCluster(t *testing.T, n int, opts clusterOpts) *cluster {
	t.Helper()
	service, err := binFromEnv("IPFS_CLUSTER_SERVICE_BIN")
	if err == nil {
		var ctl string
		if ctl, err = binFromEnv("IPFS_CLUSTER_CTL_BIN"); err == nil {
			c := &cluster{Auth: opts.Auth, pinTimeout: opts.PinTimeout, keepFailed: opts.KeepFailed, ctl: ctl}
			c.start(t, service, n)
			return c
		}
	}
	t.Fatalf("%v (make e2e builds them: make cluster)", err)
	return nil
}

func (c *cluster) start(t *testing.T, service string, n int) {
	t.Helper()
	kubos := kuboPeers(t, n)
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	swarms := make([]string, n)
	for i, k := range kubos {
		p := clusterPeer{
			Name:   fmt.Sprintf("peer%d", i),
			Dir:    filepath.Join(t.TempDir(), "cluster"),
			REST:   fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
			PinSvc: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
			Kubo:   k,
		}
		res := run(t, nil, service, "--config", p.Dir, "init", "--consensus", "crdt")
		if res.Code != 0 {
			t.Fatalf("ipfs-cluster-service init: %s", res)
		}
		p.ID = readJSONField(t, filepath.Join(p.Dir, "identity.json"), "id")
		swarms[i] = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", freePort(t), p.ID)
		c.Peers = append(c.Peers, p)
	}
	for i, p := range c.Peers {
		c.configure(t, p, hex.EncodeToString(secret), swarms, i)
		args := []string{"--config", p.Dir, "daemon"}
		if i > 0 {
			args = append(args, "--bootstrap", swarms[0])
		}
		startProcess(t, exec.Command(service, args...), filepath.Join(p.Dir, "log"), "IPFS Cluster is READY", 2*time.Minute)
	}
	c.waitReady(t, 2*time.Minute)
}

// configure edits the service.json of peer i, whose swarm address is
// swarms[i]: loopback ports, the shared secret, the kubo it pins on, no
// mDNS (other tests' clusters run on the same host), and short metric
// intervals so that allocations can be made seconds after the start. The
// other peers' addresses are in peer_addresses: the cluster's DHT, which
// would otherwise tell a peer where another is, ignores loopback addresses.
func (c *cluster) configure(t *testing.T, p clusterPeer, secret string, swarms []string, i int) {
	t.Helper()
	path := filepath.Join(p.Dir, "service.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	obj := func(keys ...string) map[string]any {
		m := cfg
		for _, k := range keys {
			next, ok := m[k].(map[string]any)
			if !ok {
				t.Fatalf("%s: no object at %s", path, strings.Join(keys, "."))
			}
			m = next
		}
		return m
	}
	cl := obj("cluster")
	cl["peername"] = p.Name
	cl["secret"] = secret
	cl["listen_multiaddress"] = []string{strings.TrimSuffix(swarms[i], "/p2p/"+p.ID)}
	cl["peer_addresses"] = append(append([]string{}, swarms[:i]...), swarms[i+1:]...)
	cl["mdns_interval"] = "0s"
	cl["monitor_ping_interval"] = "2s"
	cl["peer_watch_interval"] = "1s"
	obj("consensus", "crdt")["trusted_peers"] = []string{"*"}
	for api, url := range map[string]string{"restapi": p.REST, "pinsvcapi": p.PinSvc} {
		a := obj("api", api)
		a["http_listen_multiaddress"] = "/ip4/127.0.0.1/tcp/" + url[strings.LastIndex(url, ":")+1:]
		if c.Auth != "" {
			user, pass, _ := strings.Cut(c.Auth, ":")
			a["basic_auth_credentials"] = map[string]string{user: pass}
		}
	}
	// The kubo proxy would need a port of its own and no test uses it.
	delete(obj("api"), "ipfsproxy")
	conn := obj("ipfs_connector", "ipfshttp")
	conn["node_multiaddress"] = p.Kubo.api
	conn["pin_timeout"] = cmp.Or(c.pinTimeout, "20s")
	if !c.keepFailed {
		cl["pin_recover_interval"] = "5s"
	}
	for _, inf := range []string{"disk", "pinqueue", "tags"} {
		obj("informer", inf)["metric_ttl"] = "5s"
	}
	obj("monitor", "pubsubmon")["check_interval"] = "2s"
	// Three peers on a shared test machine: pebble's defaults (a 1 GiB
	// cache, 64 MiB memtables) are sized for a server.
	po := obj("datastore", "pebble", "pebble_options")
	po["cache_size_bytes"] = 8 << 20
	po["mem_table_size"] = 4 << 20
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readJSONField(t testing.TB, path, key string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	s, ok := m[key].(string)
	if !ok || s == "" {
		t.Fatalf("%s: no %q", path, key)
	}
	return s
}

// waitReady waits until every peer lists every peer without an error and
// holds a freespace metric from each.
func (c *cluster) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var why string
	for time.Now().Before(deadline) {
		why = c.notReady()
		if why == "" {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("cluster not ready after %v: %s (logs in %s)", timeout, why, filepath.Join(c.Peers[0].Dir, "log"))
}

func (c *cluster) notReady() string {
	for _, p := range c.Peers {
		var ids []struct {
			ID    string `json:"id"`
			Error string `json:"error"`
		}
		if err := c.getStream(p, "/peers", &ids); err != nil {
			return err.Error()
		}
		var errs []string
		for _, id := range ids {
			if id.Error != "" {
				errs = append(errs, id.ID+": "+id.Error)
			}
		}
		if len(ids) != len(c.Peers) || len(errs) > 0 {
			return fmt.Sprintf("%s lists %d peers of %d, errors: %v", p.Name, len(ids), len(c.Peers), errs)
		}
		var metrics []struct {
			Peer string `json:"peer"`
		}
		if err := c.getStream(p, "/monitor/metrics/freespace", &metrics); err != nil {
			return err.Error()
		}
		if len(metrics) != len(c.Peers) {
			return fmt.Sprintf("%s has freespace metrics from %d peers of %d", p.Name, len(metrics), len(c.Peers))
		}
	}
	return ""
}

// getStream GETs path from p's REST API and decodes its answer, a JSON
// array or a stream of JSON objects, into the slice *out points to.
func (c *cluster) getStream(p clusterPeer, path string, out any) error {
	resp, err := c.get(p, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	trimmed := strings.TrimSpace(string(body))
	if !strings.HasPrefix(trimmed, "[") {
		trimmed = "[" + strings.Join(strings.Split(trimmed, "\n"), ",") + "]"
	}
	if trimmed == "[]" || trimmed == "[,]" {
		trimmed = "[]"
	}
	if err := json.Unmarshal([]byte(trimmed), out); err != nil {
		return fmt.Errorf("GET %s: %w in %q", path, err, body)
	}
	return nil
}

func (c *cluster) get(p clusterPeer, path string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.REST+path, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	if user, pass, ok := strings.Cut(c.Auth, ":"); ok {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("GET %s%s: %w", p.REST, path, err)
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	defer c.cancel()
	return c.ReadCloser.Close()
}

// Status is root's status on each peer, by peer name, as the first peer
// sees it ("pinned", "pinning", "remote", "unpinned"...); nil when the
// cluster does not track root.
func (c *cluster) Status(t testing.TB, root string) map[string]string {
	t.Helper()
	resp, err := c.get(c.Peers[0], "/pins/"+root)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /pins/%s: %s: %s", root, resp.Status, body)
	}
	var gpi struct {
		PeerMap map[string]struct {
			Name   string `json:"peername"`
			Status string `json:"status"`
		} `json:"peer_map"`
	}
	if err := json.Unmarshal(body, &gpi); err != nil {
		t.Fatalf("GET /pins/%s: %v in %q", root, err, body)
	}
	st := map[string]string{}
	for _, pi := range gpi.PeerMap {
		st[pi.Name] = pi.Status
	}
	return st
}

// Pinset lists the CIDs in the cluster's shared state.
func (c *cluster) Pinset(t testing.TB) []string {
	t.Helper()
	var pins []struct {
		CID string `json:"cid"`
	}
	if err := c.getStream(c.Peers[0], "/allocations", &pins); err != nil {
		t.Fatal(err)
	}
	cids := make([]string, len(pins))
	for i, p := range pins {
		cids[i] = p.CID
	}
	return cids
}

// Holders are the peers whose kubo has root pinned recursively, checked on
// each kubo and not through the cluster.
func (c *cluster) Holders(t testing.TB, root string) []clusterPeer {
	t.Helper()
	var hs []clusterPeer
	for _, p := range c.Peers {
		if kuboTry(t, p.Kubo.path, "pin", "ls", "--type", "recursive", root).Code == 0 {
			hs = append(hs, p)
		}
	}
	return hs
}

// Ctl runs ipfs-cluster-ctl against the first peer.
func (c *cluster) Ctl(t testing.TB, args ...string) result {
	t.Helper()
	argv := []string{"--host", "/ip4/127.0.0.1/tcp/" + c.Peers[0].REST[strings.LastIndex(c.Peers[0].REST, ":")+1:]}
	if c.Auth != "" {
		argv = append(argv, "--basic-auth", c.Auth, "--force-http")
	}
	return run(t, nil, c.ctl, append(argv, args...)...)
}

// kuboPeers starts n kubo daemons on loopback, online, each peered with
// every other (Peering keeps the connections up) and with no routing, so
// that blocks move between them by bitswap alone.
func kuboPeers(t *testing.T, n int) []daemon {
	t.Helper()
	ds := make([]daemon, n)
	swarms := make([]string, n)
	ids := make([]string, n)
	for i := range ds {
		ds[i] = daemon{path: kubo(t, "unixfs-v1-2025", kuboConfig("Routing.Type", `"none"`))}
		swarms[i] = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", freePort(t))
		ids[i] = strings.TrimSpace(kuboRun(t, ds[i].path, "config", "Identity.PeerID"))
		kuboRun(t, ds[i].path, "config", "--json", "Addresses.Swarm", fmt.Sprintf("[%q]", swarms[i]))
	}
	for i := range ds {
		var peers []map[string]any
		for j := range ds {
			if j != i {
				peers = append(peers, map[string]any{"ID": ids[j], "Addrs": []string{swarms[j]}})
			}
		}
		js, err := json.Marshal(peers)
		if err != nil {
			t.Fatal(err)
		}
		kuboRun(t, ds[i].path, "config", "--json", "Peering.Peers", string(js))
		startKubo(t, &ds[i])
	}
	return ds
}

// startKubo gives d's repository loopback API and gateway ports and starts
// `ipfs daemon EXTRA...` on it until the test ends.
func startKubo(t *testing.T, d *daemon, extra ...string) {
	t.Helper()
	apiPort, gwPort := freePort(t), freePort(t)
	d.api = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", apiPort)
	d.gateway = fmt.Sprintf("http://127.0.0.1:%d", gwPort)
	kuboRun(t, d.path, "config", "Addresses.API", d.api)
	kuboRun(t, d.path, "config", "Addresses.Gateway", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", gwPort))
	cmd := exec.Command(ipfsBin, append([]string{"daemon"}, extra...)...)
	cmd.Env = append(os.Environ(), "IPFS_PATH="+d.path)
	startProcess(t, cmd, filepath.Join(d.path, "daemon.log"), "Daemon is ready", time.Minute)
}

// startProcess starts cmd with its output in logPath and returns once a
// line of it contains ready. When the test ends it interrupts the process,
// and kills it 20 s later if it has not exited.
func startProcess(t *testing.T, cmd *exec.Cmd, logPath, ready string, timeout time.Duration) {
	t.Helper()
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	up := make(chan bool, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		seen := false
		for sc.Scan() {
			fmt.Fprintln(log, sc.Text())
			if !seen && strings.Contains(sc.Text(), ready) {
				seen = true
				up <- true
			}
		}
		cmd.Wait()
		log.Close()
		if !seen {
			up <- false
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	name := filepath.Base(cmd.Path)
	select {
	case ok := <-up:
		if !ok {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited before it was ready:\n%s", name, b)
		}
	case <-time.After(timeout):
		t.Fatalf("%s not ready after %v (log in %s)", name, timeout, logPath)
	}
}

// TestClusterHarness checks the cluster the hand-off tests stand on: a
// block added to one peer's kubo and pinned through the cluster with a
// replication factor of the whole cluster reaches every kubo, by bitswap
// between them, and every peer reports it pinned.
func TestClusterHarness(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{Auth: "mirror:s3cret"})
	f := filepath.Join(t.TempDir(), "block")
	if err := os.WriteFile(f, []byte(t.Name()), 0o644); err != nil {
		t.Fatal(err)
	}
	root := oneCID(t, kuboRun(t, c.Peers[0].Kubo.path, "add", "-Q", "--pin=false", f))
	if res := c.Ctl(t, "pin", "add", "--rmin", "3", "--rmax", "3", "--wait", "--wait-timeout", "1m", "--name", "harness", root); res.Code != 0 {
		t.Fatalf("ipfs-cluster-ctl pin add: %s", res)
	}
	st := c.Status(t, root)
	for _, p := range c.Peers {
		if st[p.Name] != "pinned" {
			t.Fatalf("%s on %s: %v", root, p.Name, st)
		}
	}
	if hs := c.Holders(t, root); len(hs) != len(c.Peers) {
		t.Fatalf("%d kubos hold %s, want %d", len(hs), root, len(c.Peers))
	}
	if pins := c.Pinset(t); len(pins) != 1 || pins[0] != root {
		t.Fatalf("pinset %v, want [%s]", pins, root)
	}
	resp, err := http.Get(c.Peers[0].PinSvc + "/pins")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Pinning Service API without credentials: %s, want 401", resp.Status)
	}
}
