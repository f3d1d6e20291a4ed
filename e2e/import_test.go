//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/internal/cartest"
)

type importSummary struct {
	CARs []struct {
		Path      string   `json:"path"`
		Roots     []string `json:"roots"`
		Blocks    int64    `json:"blocks"`
		BlocksNew int64    `json:"blocks_new"`
	} `json:"cars"`
	Blocks int64  `json:"blocks"`
	Root   string `json:"root"`
}

// importJSON runs `ipfs-sync --json import ARGS...`, which must succeed,
// and decodes its summary.
func importJSON(t *testing.T, repo string, args ...string) importSummary {
	t.Helper()
	res := ipfsSync(t, repo, append([]string{"--json", "import"}, args...)...)
	if res.Code != 0 {
		t.Fatalf("import %s: %s", strings.Join(args, " "), res)
	}
	var s importSummary
	if err := json.Unmarshal([]byte(res.Stdout), &s); err != nil {
		t.Fatalf("%v in %q", err, res.Stdout)
	}
	return s
}

// refRoots is the roots the ref name has had in repo, oldest first.
func refRoots(t *testing.T, repo, name string) []string {
	t.Helper()
	res := ipfsSync(t, repo, "--json", "log", name)
	if res.Code != 0 {
		if strings.Contains(res.Stderr, "no ref") {
			return nil
		}
		t.Fatalf("log %s: %s", name, res)
	}
	var roots []string
	dec := json.NewDecoder(strings.NewReader(res.Stdout))
	for {
		var v struct{ Root string }
		if err := dec.Decode(&v); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, v.Root)
	}
	slices.Reverse(roots) // log lists the newest first
	return roots
}

// TestImportDeltaCAR: a mirror host that receives a release job's CARs
// (`sync --car`: all of the first root, then only what is new) imports
// them in order into its own repository and serves each new root whole:
// a pull from it gives the tree exactly. A delta is refused (exit 1, the
// missing blocks named, no ref moved) where its base is not there, and so
// is a delta with a corrupt block.
func TestImportDeltaCAR(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync not installed")
	}
	dir := t.TempDir()
	full, delta := filepath.Join(dir, "full.car"), filepath.Join(dir, "delta.car")
	_, src, release, _ := syncedTiny(t, "--name", "m", "--car", full)
	root1 := refRoots(t, release, "m")[0]
	publishCycle(t, src, 1)
	res := ipfsSync(t, release, "-q", "sync", "--name", "m", "--car", delta, src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	root2 := oneCID(t, res.Stdout)

	mirror := filepath.Join(dir, "mirror")
	if s := importJSON(t, mirror, "--name", "m", full); s.Root != root1 {
		t.Fatalf("import of the first CAR recorded %s, want %s", s.Root, root1)
	}

	// The delta alone does not make root2 in a repository without root1.
	other := filepath.Join(dir, "other")
	res = ipfsSync(t, other, "import", "--name", "m", delta)
	if res.Code != 1 || !strings.Contains(res.Stderr, "lacks") || !strings.Contains(res.Stderr, "no ref moved") {
		t.Errorf("delta without its base: want exit 1 naming what is missing, got %s", res)
	}
	if roots := refRoots(t, other, "m"); roots != nil {
		t.Errorf("the ref moved to %v on a refused import", roots)
	}

	// A corrupt block: refused, the ref stays.
	bad := corruptCAR(t, delta)
	res = ipfsSync(t, mirror, "import", "--name", "m", bad)
	if res.Code != 1 || !strings.Contains(res.Stderr, "does not match its CID") {
		t.Errorf("corrupt delta: want exit 1 saying a block does not match its CID, got %s", res)
	}
	if roots := refRoots(t, mirror, "m"); !slices.Equal(roots, []string{root1}) {
		t.Errorf("after a refused import the ref is %v, want [%s]", roots, root1)
	}

	s := importJSON(t, mirror, "--name", "m", delta)
	if s.Root != root2 || !slices.Equal(refRoots(t, mirror, "m"), []string{root1, root2}) {
		t.Fatalf("import of the delta recorded %s (ref %v), want %s after %s", s.Root, refRoots(t, mirror, "m"), root2, root1)
	}
	if res := ipfsSync(t, mirror, "log", "m"); !strings.Contains(res.Stdout, root2+"  ") || !strings.Contains(res.Stdout, "imported from "+delta) {
		t.Errorf("log m does not name the delta CAR root2 came in: %s", res)
	}
	fullBlocks := importJSON(t, filepath.Join(dir, "count"), full).Blocks
	t.Logf("full CAR %d blocks, delta %d (%d new to the mirror)", fullBlocks, s.Blocks, s.CARs[0].BlocksNew)
	if s.Blocks >= fullBlocks {
		t.Errorf("the delta CAR has %d blocks, the full one %d", s.Blocks, fullBlocks)
	}

	// The mirror serves root2 whole.
	base := startServe(t, mirror)
	dest := filepath.Join(dir, "dest")
	pullJSON(t, filepath.Join(dir, "puller"), root2, dest, "--from", base)
	assertIdentical(t, src, dest)
	if res := ipfsSync(t, mirror, "fsck"); res.Code != 0 {
		t.Errorf("fsck of the mirror: %s", res)
	}
}

// corruptCAR is a copy of the CAR at path with one byte of its last block
// changed.
func corruptCAR(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	out := path + ".corrupt"
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

const fixtureDir = "testdata/gateway-conformance/fixtures"

// fixtureCARs is every CAR of the gateway conformance suite's fixtures.
func fixtureCARs(t *testing.T) []string {
	t.Helper()
	var cars []string
	err := filepath.WalkDir(fixtureDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".car") {
			cars = append(cars, p)
		}
		return err
	})
	if err != nil || len(cars) == 0 {
		t.Fatalf("no fixture CARs under %s: %v", fixtureDir, err)
	}
	return cars
}

// TestImportConformanceFixtures: every CAR of the gateway conformance
// suite (UnixFS files, directories and HAMTs, dag-cbor and dag-json, a
// CAR with a block missing) imports in one run; each CAR's roots are
// printed, in order, and serve gives back each of their blocks byte for
// byte. With --name, a fixture with a whole UnixFS DAG is recorded and one
// with a block missing, or with dag-cbor, is refused.
func TestImportConformanceFixtures(t *testing.T) {
	cars := fixtureCARs(t)
	repo := filepath.Join(t.TempDir(), "repo")
	res := ipfsSync(t, repo, append([]string{"import"}, cars...)...)
	if res.Code != 0 {
		t.Fatalf("import of the fixtures: %s", res)
	}
	var want []string
	all := map[cid.Cid][]byte{}
	for _, car := range cars {
		c := cartest.Read(t, car)
		roots, bs := c.Roots, c.Blocks
		for _, r := range roots {
			want = append(want, r.String())
		}
		for _, b := range bs {
			all[b.Cid()] = b.RawData()
		}
	}
	if got := strings.Fields(res.Stdout); !slices.Equal(got, want) {
		t.Errorf("import printed roots %v, want the CARs' %v", got, want)
	}

	base := startServe(t, repo)
	for c, data := range all {
		if c.Prefix().MhType == mh.IDENTITY {
			continue
		}
		resp, err := http.Get(base + "/ipfs/" + c.String() + "?format=raw")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
			t.Errorf("block %s: status %d, %d bytes (%v), want %d bytes", c, resp.StatusCode, len(body), err, len(data))
		}
	}
	t.Logf("%d CARs, %d blocks served back", len(cars), len(all))

	for _, tt := range []struct {
		car  string
		code int
		says string
	}{
		{"path_gateway_unixfs/dir-with-files.car", 0, ""},
		{"trustless_gateway_car/single-layer-hamt-with-multi-block-files.car", 0, ""},
		{"trustless_gateway_car/file-3k-and-3-blocks-missing-block.car", 1, "lacks 1 block(s)"},
		{"trustless_gateway_car/dir-with-dag-cbor-with-links.car", 1, "UnixFS DAGs"},
	} {
		t.Run(tt.car, func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			res := ipfsSync(t, repo, "import", "--name", "f", filepath.Join(fixtureDir, tt.car))
			if res.Code != tt.code || !strings.Contains(res.Stderr, tt.says) {
				t.Fatalf("want exit %d saying %q, got %s", tt.code, tt.says, res)
			}
			roots := cartest.Read(t, filepath.Join(fixtureDir, tt.car)).Roots
			got := refRoots(t, repo, "f")
			if tt.code == 0 && !slices.Equal(got, []string{roots[0].String()}) || tt.code != 0 && got != nil {
				t.Errorf("ref f: %v", got)
			}
		})
	}
}
