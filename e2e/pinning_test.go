//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The hand-off to a pinning service, tested against a real implementation
// of the Pinning Service API v1.0.0: IPFS Cluster's pinsvcapi, on a 3-peer
// cluster whose API asks for credentials (a bearer token from its /token
// endpoint). The blocks reach the cluster from a fourth kubo node, the
// origin, which --api feeds and which the cluster peers are not peered
// with: they fetch from the origins the pin request names.

// pinningRun is what sync --json and push --json print about a hand-off.
type pinningRun struct {
	Root string `json:"root"`
	Push struct {
		Blocks int64 `json:"blocks_sent"`
	} `json:"push"`
	// push --json prints the push's fields at the top level.
	Blocks  int64 `json:"blocks_sent"`
	Pinning struct {
		Service   string   `json:"service"`
		Name      string   `json:"name"`
		Root      string   `json:"root"`
		RequestID string   `json:"requestid"`
		Status    string   `json:"status"`
		Delegates []string `json:"delegates"`
		Origins   []string `json:"origins"`
		Sent      string   `json:"sent"`
		Replaced  *string  `json:"replaced"`
		Removed   []string `json:"removed"`
	} `json:"pinning"`
	PushError string `json:"push_error"`
}

// pinningCLI runs ipfs-sync with env, wants exit code want, checks that no
// secret is anywhere in what it printed, and decodes its --json output.
func pinningCLI(t *testing.T, env, secrets []string, want int, args ...string) (pinningRun, result) {
	t.Helper()
	res := run(t, env, syncBin, args...)
	if res.Code != want {
		t.Fatalf("ipfs-sync %s: want exit %d\n%s", strings.Join(args, " "), want, res)
	}
	for _, s := range secrets {
		if strings.Contains(res.Stdout+res.Stderr, s) {
			t.Fatalf("ipfs-sync %s printed the token:\n%s", strings.Join(args, " "), res)
		}
	}
	var out pinningRun
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
		t.Fatalf("ipfs-sync %s: %v in\n%s", strings.Join(args, " "), err, res)
	}
	return out, res
}

// pinsvcToken asks the cluster's Pinning Service API for a bearer token
// (POST /token with the basic-auth credentials).
func pinsvcToken(t *testing.T, c *cluster) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.Peers[0].PinSvc+"/token", nil)
	if err != nil {
		t.Fatal(err)
	}
	user, pass, _ := strings.Cut(c.Auth, ":")
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok.Token == "" {
		t.Fatalf("POST /token: %s, %v", resp.Status, err)
	}
	return tok.Token
}

// pinsNamed lists the pins of the name at the cluster's Pinning Service
// API in every status, straight over HTTP: what the service holds, not
// what ipfs-sync says it did.
func pinsNamed(t *testing.T, c *cluster, token, name string) []string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.Peers[0].PinSvc+"/pins?status=queued,pinning,pinned,failed&name="+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Results []struct {
			Pin struct{ CID string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /pins?name=%s: %s, %v", name, resp.Status, err)
	}
	var cids []string
	for _, r := range list.Results {
		cids = append(cids, r.Pin.CID)
	}
	return cids
}

// peerAttempt is a peer's status of a pin and how many times it tried it.
type peerAttempt struct {
	Status   string `json:"status"`
	Attempts int    `json:"attempt_count"`
	Error    string `json:"error"`
}

// peerAttempts is root's status and attempt count on each peer, by peer
// name, from the cluster's REST API.
func peerAttempts(t *testing.T, c *cluster, root string) map[string]peerAttempt {
	t.Helper()
	resp, err := c.get(c.Peers[0], "/pins/"+root)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var gpi struct {
		PeerMap map[string]struct {
			Name string `json:"peername"`
			peerAttempt
		} `json:"peer_map"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&gpi); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /pins/%s: %s, %v", root, resp.Status, err)
	}
	out := map[string]peerAttempt{}
	for _, pi := range gpi.PeerMap {
		out[pi.Name] = pi.peerAttempt
	}
	return out
}

// logClusterOnFailure has a failed test log what the cluster says of its
// pins (ipfs-cluster-ctl status: each peer's status and error), whom each
// peer's kubo is connected to (the origin among them or not) and what its
// bitswap still wants, and whom the origin is connected to, before the
// cluster and the origin stop: call it after both started.
func logClusterOnFailure(t *testing.T, c *cluster, origin daemon) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		t.Logf("ipfs-cluster-ctl status:\n%s", c.Ctl(t, "status"))
		for _, p := range c.Peers {
			id := strings.TrimSpace(kuboRun(t, p.Kubo.path, "config", "Identity.PeerID"))
			t.Logf("%s's kubo %s: swarm peers:\n%s", p.Name, id, kuboTry(t, p.Kubo.path, "swarm", "peers"))
			t.Logf("%s's kubo bitswap stat:\n%s", p.Name, kuboTry(t, p.Kubo.path, "bitswap", "stat"))
			t.Logf("%s's wants as the origin sees them:\n%s", p.Name, kuboTry(t, origin.path, "bitswap", "wantlist", "--peer", id))
			t.Logf("%s's kubo's commands:\n%s", p.Name, kuboTry(t, p.Kubo.path, "diag", "cmds"))
			t.Logf("%s's cluster log, its warnings and errors:\n%s", p.Name, logTail(filepath.Join(p.Dir, "log"), "WARN", "ERROR"))
			t.Logf("the origin's ledger of %s:\n%s", p.Name, kuboTry(t, origin.path, "bitswap", "ledger", id))
		}
		t.Logf("the origin's swarm peers:\n%s", kuboTry(t, origin.path, "swarm", "peers"))
		t.Logf("the origin's bitswap stat:\n%s", kuboTry(t, origin.path, "bitswap", "stat"))
	})
}

// logTail is the last 40 lines of the log at path that hold one of words.
func logTail(path string, words ...string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				keep = append(keep, l)
				break
			}
		}
	}
	return strings.Join(keep[max(0, len(keep)-40):], "\n")
}

// originKubo starts an online kubo on loopback, peered with nobody and
// without routing: a cluster peer can fetch from it only by dialling the
// origins of a pin request.
func originKubo(t *testing.T) daemon {
	t.Helper()
	d := daemon{path: kubo(t, "unixfs-v1-2025", kuboConfig("Routing.Type", `"none"`))}
	kuboRun(t, d.path, "config", "--json", "Addresses.Swarm", fmt.Sprintf(`["/ip4/127.0.0.1/tcp/%d"]`, freePort(t)))
	startKubo(t, &d)
	return d
}

// peerWithOrigin makes origin a peer of every cluster peer's kubo (kubo's
// peering keeps the connection up), as a mirror's origin is in the
// topology docs/mirror-network.md describes. Tests whose subject is not
// the service dialling its origins use it, so that they do not depend on
// the cluster's background swarm/connect racing the pin.
func peerWithOrigin(t *testing.T, c *cluster, origin daemon) {
	t.Helper()
	var swarm []string
	if err := json.Unmarshal([]byte(kuboRun(t, origin.path, "config", "Addresses.Swarm")), &swarm); err != nil || len(swarm) != 1 {
		t.Fatalf("origin's swarm address: %v %v", swarm, err)
	}
	id := strings.TrimSpace(kuboRun(t, origin.path, "config", "Identity.PeerID"))
	for _, p := range c.Peers {
		kuboRun(t, p.Kubo.path, "swarm", "peering", "add", swarm[0]+"/p2p/"+id)
	}
	// peering add connects in the background: wait for the connections, so
	// that no pin starts before its kubo can ask the origin for blocks.
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range c.Peers {
		for !strings.Contains(kuboRun(t, p.Kubo.path, "swarm", "peers"), id) {
			if time.Now().After(deadline) {
				t.Fatalf("%s's kubo is not connected to the origin %s after 30 s", p.Name, id)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// waitPinnedEverywhere waits until every peer reports root pinned, then
// checks that every kubo holding the pin has every block of root.
func waitPinnedEverywhere(t *testing.T, c *cluster, root string) {
	t.Helper()
	waitPinnedOn(t, c, root, len(c.Peers), time.Minute)
	holders := c.Holders(t, root)
	if len(holders) != len(c.Peers) {
		t.Fatalf("%d kubos hold %s pinned, want %d", len(holders), root, len(c.Peers))
	}
	for _, p := range holders {
		if res := kuboTry(t, p.Kubo.path, "dag", "stat", "--offline", "--progress=false", root); res.Code != 0 {
			t.Fatalf("%s's kubo lacks blocks of %s: %s", p.Name, root, res)
		}
	}
}

// waitUnpinned waits until no kubo of the cluster has root pinned and the
// cluster's shared state no longer has it (the cluster unpins in the
// background once the pin is gone from its state).
func waitUnpinned(t *testing.T, c *cluster, root string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		hs := c.Holders(t, root)
		if len(hs) == 0 && !slices.Contains(c.Pinset(t), root) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still pinned on %d kubos (pinset %v) a minute after its pin was replaced", root, len(hs), c.Pinset(t))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestPinningService is the Pinning Service API hand-off end to end: the
// first sync adds the pin and every peer holding it has every block; run
// again, it sends nothing; after a publish cycle the new root is added
// and the old pin removed once it is pinned; the token is never printed, a wrong
// one fails the hand-off, config.json's is used; a pin the cluster cannot
// fetch is reported failed with exit 6, by sync and by push, and asked
// anew by a rerun; push killed at random moments is run again and leaves
// the name's one pin on the root.
func TestPinningService(t *testing.T) {
	// The pin timeout is how long a peer's kubo may fetch nothing before
	// the pin fails: short, for the failed subtest, but not so short that
	// a kubo stalled on a loaded machine fails a pin whose blocks it can
	// fetch.
	c := startCluster(t, 3, clusterOpts{Auth: "mirror:s3cret", PinTimeout: "30s", KeepFailed: true})
	token := pinsvcToken(t, c)
	origin := originKubo(t)
	logClusterOnFailure(t, c, origin)
	originID := strings.TrimSpace(kuboRun(t, origin.path, "config", "Identity.PeerID"))

	dir := t.TempDir()
	src := filepath.Join(dir, "mirror")
	copyTree(t, tinyTree.get(t), src)
	repo := filepath.Join(dir, "repo")
	env := []string{"IPFS_SYNC_PINNING_TOKEN=" + token}
	secrets := []string{token, "s3cret"}
	sync := []string{"--repo", repo, "--json", "sync", "--name", "mirror", "--api", origin.api, "--pinning-service", c.Peers[0].PinSvc, "--wait", "--wait-timeout", "2m", src}

	first, _ := pinningCLI(t, env, secrets, 0, sync...)
	p := first.Pinning
	if p.Sent != "add" || p.Status != "pinned" || p.Root != first.Root || p.Name != "mirror" || p.RequestID == "" || p.Replaced != nil {
		t.Fatalf("first sync: %+v, want %s added and pinned", p, first.Root)
	}
	// The cluster names as delegates its peers' public kubo addresses:
	// none on loopback, but the list is there.
	if p.Delegates == nil {
		t.Errorf("first sync: no delegates list")
	}
	if len(p.Origins) == 0 || !slices.ContainsFunc(p.Origins, func(o string) bool { return strings.HasSuffix(o, "/p2p/"+originID) }) {
		t.Errorf("origins %q, want the origin kubo's addresses (/p2p/%s)", p.Origins, originID)
	}
	waitPinnedEverywhere(t, c, first.Root)

	again, _ := pinningCLI(t, env, secrets, 0, sync...)
	if again.Pinning.Sent != "none" || again.Pinning.Status != "pinned" || again.Push.Blocks != 0 || again.Root != first.Root {
		t.Errorf("the same sync again: %+v (%d blocks pushed), want nothing sent", again.Pinning, again.Push.Blocks)
	}

	publishCycle(t, src, 2)
	second, _ := pinningCLI(t, env, secrets, 0, sync...)
	p = second.Pinning
	// The new root is added, and the old pin removed once it is pinned.
	if second.Root == first.Root || p.Sent != "add" || p.Replaced == nil || *p.Replaced != first.Root || p.Status != "pinned" ||
		!slices.Equal(p.Removed, []string{first.Pinning.RequestID}) {
		t.Fatalf("after a publish cycle: %+v, want %s added, pinned, in place of %s (request %s removed)", p, second.Root, first.Root, first.Pinning.RequestID)
	}
	waitPinnedEverywhere(t, c, second.Root)
	waitUnpinned(t, c, first.Root)
	if pins := pinsNamed(t, c, token, "mirror"); len(pins) != 1 || pins[0] != second.Root {
		t.Errorf("pins named mirror: %v, want [%s]", pins, second.Root)
	}

	t.Run("token", func(t *testing.T) {
		wrong := "wrong-" + hex.EncodeToString(randomBytes(t, 8))
		for _, env := range [][]string{nil, {"IPFS_SYNC_PINNING_TOKEN=" + wrong}} {
			out, res := pinningCLI(t, env, append(secrets, wrong), exitHandOff, sync...)
			if out.Root != second.Root || !strings.Contains(res.Stderr, "401") || out.PushError == "" {
				t.Errorf("token %v: root %q, push_error %q; want the root, and a 401 on stderr\n%s", env, out.Root, out.PushError, res)
			}
		}
		if err := os.WriteFile(filepath.Join(repo, "config.json"), []byte(`{"pinning-token": "`+token+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(filepath.Join(repo, "config.json"))
		out, _ := pinningCLI(t, nil, secrets, 0, sync...)
		if out.Pinning.Sent != "none" || out.Pinning.Status != "pinned" {
			t.Errorf("token from config.json: %+v, want pinned, nothing sent", out.Pinning)
		}
		for _, args := range [][]string{{"sync", "--help"}, {"push", "--help"}} {
			res := run(t, env, syncBin, args...)
			if strings.Contains(res.Stdout+res.Stderr, token) || strings.Contains(res.Stdout, "--pinning-token") {
				t.Errorf("ipfs-sync %s shows the token or its flag:\n%s", strings.Join(args, " "), res)
			}
		}
	})

	t.Run("failed", func(t *testing.T) {
		// Blocks nobody the cluster can reach has: pushed to an offline
		// kubo, which no peer can dial.
		offline := kuboDaemon(t)
		lone := filepath.Join(t.TempDir(), "lone")
		if err := os.MkdirAll(lone, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(lone, "only-here"), randomBytes(t, 4096), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"--repo", repo, "--json", "sync", "--name", "lone", "--api", offline.api, "--pinning-service", c.Peers[0].PinSvc, "--wait", "--wait-timeout", "2m", lone}
		out, res := pinningCLI(t, env, secrets, exitPinFailed, args...)
		if out.Pinning.Status != "failed" || out.Pinning.Sent != "add" || out.Root == "" || !strings.Contains(res.Stderr, "failed") {
			t.Fatalf("sync of blocks the cluster cannot fetch: %+v\n%s", out.Pinning, res)
		}
		// push, run again: the failed pin is asked anew (the cluster
		// answers with the same request id, its CID).
		push := []string{"--repo", repo, "--json", "push", "--name", "lone", "--api", offline.api, "--pinning-service", c.Peers[0].PinSvc, "--wait", "--wait-timeout", "2m", out.Root}
		again, res := pinningCLI(t, env, secrets, exitPinFailed, push...)
		if again.Pinning.Status != "failed" || again.Pinning.Sent != "add" || again.Pinning.RequestID != out.Pinning.RequestID || again.Blocks != 0 {
			t.Errorf("push of the failed root: %+v (%d blocks), want it asked anew, failed again\n%s", again.Pinning, again.Blocks, res)
		}
		// The failure reported is the new attempt's, not the first one's
		// that the cluster's peers report until the new pin reaches them:
		// every peer reporting it failed has tried twice.
		failedPeers := 0
		for name, pi := range peerAttempts(t, c, out.Root) {
			if pi.Status == "pin_error" {
				failedPeers++
				if pi.Attempts < 2 {
					t.Errorf("%s reports %s failed after %d attempts, want the rerun's (2)", name, out.Root, pi.Attempts)
				}
			}
		}
		if failedPeers == 0 {
			t.Errorf("no peer reports %s failed", out.Root)
		}
		if pins := pinsNamed(t, c, token, "lone"); len(pins) != 1 || pins[0] != out.Root {
			t.Errorf("pins named lone: %v, want [%s]", pins, out.Root)
		}
		if pins := pinsNamed(t, c, token, "mirror"); len(pins) != 1 || pins[0] != second.Root {
			t.Errorf("pins named mirror after the failures: %v, want [%s]", pins, second.Root)
		}
	})

	t.Run("killed", func(t *testing.T) {
		// The token from the repository's config.json: killLoop's runs
		// have no environment of their own.
		_, src, repo, prev := syncedTiny(t, "--name", "k")
		if err := os.WriteFile(filepath.Join(repo, "config.json"), []byte(`{"pinning-token": "`+token+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		push := func(root string) []string {
			return []string{"--repo", repo, "--json", "push", root, "--name", "killed", "--api", origin.api,
				"--pinning-service", c.Peers[0].PinSvc, "--wait", "--wait-timeout", "2m"}
		}
		// The kills land within the time a whole hand-off of the first
		// tree takes.
		start := time.Now()
		pinningCLI(t, nil, secrets, 0, push(prev)...)
		window := time.Since(start)
		rng := mrand.New(mrand.NewPCG(7, 70))
		landed, runs := 0, 0
		// Seeds of their own: a root of the mirror above would be the
		// same pin at the cluster, whose request ids are CIDs.
		for seed := uint64(101); landed < 8; seed++ {
			if seed > 112 {
				t.Fatalf("12 cycles, only %d kills landed", landed)
			}
			publishCycle(t, src, seed)
			res := ipfsSync(t, repo, "-q", "sync", "--name", "k", src)
			if res.Code != 0 {
				t.Fatal(res)
			}
			root := oneCID(t, res.Stdout)
			// What the cluster's peers say of the root, should the cycle
			// fail.
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("%s on each peer: %+v", root, peerAttempts(t, c, root))
				}
			})
			// A kill leaves the previous root's pin, kept until the new
			// one is pinned, and the new one's, and no other.
			killLoop(t, rng, 3, window, push(root), func() {
				if pins := pinsNamed(t, c, token, "killed"); len(pins) > 2 || slices.ContainsFunc(pins, func(p string) bool { return p != prev && p != root }) {
					t.Fatalf("pins named killed after a kill: %v, want %s and %s at most", pins, prev, root)
				}
			}, &landed, &runs)
			out, _ := pinningCLI(t, nil, secrets, 0, push(root)...)
			if out.Pinning.Status != "pinned" {
				t.Fatalf("push after kills: %+v", out.Pinning)
			}
			waitPinnedEverywhere(t, c, root)
			waitUnpinned(t, c, prev)
			if pins := pinsNamed(t, c, token, "killed"); len(pins) != 1 || pins[0] != root {
				t.Fatalf("pins named killed after the cycle: %v, want [%s]", pins, root)
			}
			again, _ := pinningCLI(t, nil, secrets, 0, push(root)...)
			if again.Pinning.Sent != "none" || again.Blocks != 0 || again.Pinning.Status != "pinned" {
				t.Fatalf("a push after the cycle's hand-off finished: %+v, %d blocks", again.Pinning, again.Blocks)
			}
			prev = root
		}
		requireLanded(t, landed, runs)
	})
}

// TestPinningServiceFromCluster: with --cluster and no --api, the blocks
// go to the cluster and the pinning service (another cluster's, whose
// kubo is peered with nobody) fetches them from the IPFS node of the
// --cluster peer: push adds the pin, a sync after a publish cycle
// adds the new root in its place, and the service's kubo holds each root
// whole.
func TestPinningServiceFromCluster(t *testing.T) {
	fed := startCluster(t, 1, clusterOpts{})
	svc := startCluster(t, 1, clusterOpts{Auth: "pins:s3cret"})
	token := pinsvcToken(t, svc)
	env := []string{"IPFS_SYNC_PINNING_TOKEN=" + token}
	secrets := []string{token, "s3cret"}
	fedID := strings.TrimSpace(kuboRun(t, fed.Peers[0].Kubo.path, "config", "Identity.PeerID"))
	_, src, repo, root := syncedTiny(t, "--name", "m")
	hand := []string{"--name", "m", "--cluster", fed.URL(), "--pinning-service", svc.Peers[0].PinSvc, "--wait", "--wait-timeout", "2m"}

	out, _ := pinningCLI(t, env, secrets, 0, slices.Concat([]string{"--repo", repo, "--json", "push", root}, hand)...)
	p := out.Pinning
	if p.Sent != "add" || p.Status != "pinned" || !slices.ContainsFunc(p.Origins, func(o string) bool { return strings.HasSuffix(o, "/p2p/"+fedID) }) {
		t.Fatalf("push --cluster --pinning-service: %+v, want added, pinned, from the --cluster peer's kubo (%s)", p, fedID)
	}
	waitPinnedEverywhere(t, svc, root)

	publishCycle(t, src, 3)
	next, _ := pinningCLI(t, env, secrets, 0, slices.Concat([]string{"--repo", repo, "--json", "sync"}, hand, []string{src})...)
	p = next.Pinning
	if next.Root == root || p.Sent != "add" || p.Replaced == nil || *p.Replaced != root || p.Status != "pinned" || len(p.Removed) != 1 {
		t.Fatalf("sync after a publish cycle: %+v, want %s added, pinned, in place of %s (removed)", p, next.Root, root)
	}
	waitPinnedEverywhere(t, svc, next.Root)
	waitUnpinned(t, svc, root)
}

// The exit codes of a hand-off, as docs/usage.md documents them.
const (
	exitHandOff   = 5
	exitPinFailed = 6
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
