//go:build e2e

package e2e

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// freePort asks the kernel for an unused loopback port.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// kuboDaemon starts `ipfs daemon --offline` on a fresh repository with its
// API and gateway on loopback ports, and stops it when the test ends.
type daemon struct {
	path    string
	api     string // multiaddr
	gateway string // http://127.0.0.1:PORT
}

func kuboDaemon(t *testing.T) daemon {
	t.Helper()
	d := daemon{path: kubo(t, "unixfs-v1-2025")}
	startKubo(t, &d, "--offline")
	return d
}

// refsUnder lists every block under root as kubo sees it (root included).
func refsUnder(t *testing.T, d daemon, root string) map[string]bool {
	t.Helper()
	out := kuboRun(t, d.path, "refs", "-r", "--unique", "--offline", root)
	set := map[string]bool{root: true}
	for _, f := range strings.Fields(out) {
		set[f] = true
	}
	return set
}

type pushJSON struct {
	Root string `json:"root"`
	Push struct {
		Previous *string `json:"previous"`
		Blocks   int     `json:"blocks_sent"`
	} `json:"push"`
}

// TestPushToKubo syncs a tiny mirror and pushes it into a real kubo
// daemon, then a publish cycle later pushes again: only the new blocks
// travel and the pin moves.
func TestPushToKubo(t *testing.T) {
	d := kuboDaemon(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "mirror")
	copyTree(t, tinyTree.get(t), src)
	repo := filepath.Join(dir, "repo")

	syncPush := func() pushJSON {
		res := ipfsSync(t, repo, "--json", "sync", src, "--api", d.api, "--to-files", "/mirror")
		if res.Code != 0 {
			t.Fatalf("sync --api: %s", res)
		}
		var p pushJSON
		if err := json.Unmarshal([]byte(res.Stdout), &p); err != nil {
			t.Fatalf("%v in %q", err, res.Stdout)
		}
		return p
	}
	first := syncPush()
	if first.Push.Previous != nil {
		t.Fatalf("first push has a previous root: %v", *first.Push.Previous)
	}
	if !strings.Contains(kuboRun(t, d.path, "pin", "ls", "--type", "recursive"), first.Root+" recursive") {
		t.Fatal("root not pinned recursively")
	}
	kuboRun(t, d.path, "dag", "stat", "--offline", first.Root)
	before := refsUnder(t, d, first.Root)
	if first.Push.Blocks != len(before) {
		t.Fatalf("first push sent %d blocks, the DAG has %d", first.Push.Blocks, len(before))
	}

	next := filepath.Join(dir, "next")
	copyTree(t, src, next)
	publishCycle(t, next, 1)
	rsyncTree(t, next, src)
	second := syncPush()
	after := refsUnder(t, d, second.Root)
	newBlocks := 0
	for c := range after {
		if !before[c] {
			newBlocks++
		}
	}
	if second.Push.Blocks != newBlocks {
		t.Fatalf("second push sent %d blocks, %d are new", second.Push.Blocks, newBlocks)
	}
	kuboRun(t, d.path, "dag", "stat", "--offline", second.Root)
	pins := kuboRun(t, d.path, "pin", "ls", "--type", "recursive")
	if !strings.Contains(pins, second.Root) || strings.Contains(pins, first.Root) {
		t.Fatalf("pin did not move from %s to %s:\n%s", first.Root, second.Root, pins)
	}
	if got := strings.TrimSpace(kuboRun(t, d.path, "files", "stat", "--hash", "/mirror")); got != second.Root {
		t.Fatalf("/mirror is %s, want %s", got, second.Root)
	}
}

// TestDeltaCARs imports the first full CAR and then the delta CAR of a
// publish cycle into a fresh kubo: it holds the whole new DAG, and the
// delta holds no block that was under the old root.
func TestDeltaCARs(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "mirror")
	copyTree(t, tinyTree.get(t), src)
	repo := filepath.Join(dir, "repo")
	full, delta := filepath.Join(dir, "full.car"), filepath.Join(dir, "delta.car")
	res := ipfsSync(t, repo, "-q", "sync", "--car", full, src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	old := oneCID(t, res.Stdout)
	next := filepath.Join(dir, "next")
	copyTree(t, src, next)
	publishCycle(t, next, 2)
	rsyncTree(t, next, src)
	res = ipfsSync(t, repo, "-q", "sync", "--car", delta, src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	root := oneCID(t, res.Stdout)

	oldKubo := kubo(t, "unixfs-v1-2025")
	kuboRun(t, oldKubo, "dag", "import", "--pin-roots=false", full)
	oldSet := map[string]bool{old: true}
	for _, c := range strings.Fields(kuboRun(t, oldKubo, "refs", "-r", "--unique", "--offline", old)) {
		oldSet[c] = true
	}
	deltaKubo := kubo(t, "unixfs-v1-2025")
	kuboRun(t, deltaKubo, "dag", "import", "--pin-roots=false", delta)
	for _, c := range strings.Fields(kuboRun(t, deltaKubo, "refs", "local")) {
		if oldSet[c] {
			t.Errorf("delta CAR holds %s, which is under the old root", c)
		}
	}
	kuboRun(t, oldKubo, "dag", "import", "--pin-roots=false", delta)
	kuboRun(t, oldKubo, "dag", "stat", "--offline", root)

	// export --since gives the same set of blocks.
	since := filepath.Join(dir, "since.car")
	if res := ipfsSync(t, repo, "export", root, "--since", old, "--car", since); res.Code != 0 {
		t.Fatal(res)
	}
	sinceKubo := kubo(t, "unixfs-v1-2025")
	kuboRun(t, sinceKubo, "dag", "import", "--pin-roots=false", since)
	a := strings.Fields(kuboRun(t, deltaKubo, "refs", "local"))
	b := strings.Fields(kuboRun(t, sinceKubo, "refs", "local"))
	if len(a) != len(b) {
		t.Errorf("sync --car delta has %d blocks, export --since %d", len(a), len(b))
	}
}
