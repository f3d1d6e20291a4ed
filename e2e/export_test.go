//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestExportCARImportsIntoKubo: every block under a root is in the store.
// `ipfs-sync export ROOT --car F` loads into a fresh kubo with `ipfs dag
// import`, which reports the same root, and `ipfs dag stat --offline`
// walks the whole DAG without fetching anything. The block count in the
// CAR is the DAG's unique block count: nothing missing, nothing extra.
func TestExportCARImportsIntoKubo(t *testing.T) {
	tiny := tinyTree.get(t)
	for _, m := range []importMode{modeDefault, modeV0, hamtMode(modeDefault, kib, "block")} {
		t.Run(m.name, func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			res := ipfsSync(t, repo, append(append([]string{"-q", "sync"}, m.sync...), tiny)...)
			if res.Code != 0 {
				t.Fatalf("sync: %s", res)
			}
			root := oneCID(t, res.Stdout)

			car := filepath.Join(t.TempDir(), "tiny.car")
			res = ipfsSync(t, repo, "export", root, "--car", car)
			if res.Code != 0 {
				t.Fatalf("export %s --car %s: %s", root, car, res)
			}
			blocks := regexp.MustCompile(`: (\d+) blocks`).FindStringSubmatch(res.Stderr)
			if blocks == nil {
				t.Fatalf("export printed no block count: %q", res.Stderr)
			}

			ipfsPath := kubo(t, "unixfs-v1-2025")
			out := kuboRun(t, ipfsPath, "dag", "import", "--offline", car)
			if want := "Pinned root\t" + root + "\tsuccess"; !strings.Contains(out, want) {
				t.Fatalf("ipfs dag import: want %q in\n%s", want, out)
			}
			stat := kuboRun(t, ipfsPath, "dag", "stat", "--offline", "--progress=false", root)
			if !regexp.MustCompile(`Unique Blocks: ` + blocks[1] + `\n`).MatchString(stat) {
				t.Errorf("CAR has %s blocks, kubo's dag stat of the DAG says:\n%s", blocks[1], stat)
			}
		})
	}
}

// TestExportToStdout: `--car -` writes the CAR to stdout (the help's
// `ipfs-sync export ROOT --car - | ipfs dag import` example) and nothing
// else there.
func TestExportToStdout(t *testing.T) {
	dir := widthTree.get(t)
	repo := filepath.Join(t.TempDir(), "repo")
	root := oneCID(t, ipfsSync(t, repo, "-q", "sync", dir).Stdout)
	res := ipfsSync(t, repo, "export", root, "--car", "-")
	if res.Code != 0 {
		t.Fatalf("export --car -: %s", res)
	}
	car := filepath.Join(t.TempDir(), "stdout.car")
	if err := os.WriteFile(car, []byte(res.Stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	ipfsPath := kubo(t, "unixfs-v1-2025")
	out := kuboRun(t, ipfsPath, "dag", "import", "--offline", car)
	if !strings.Contains(out, root) {
		t.Fatalf("ipfs dag import of stdout: %s", out)
	}
	kuboRun(t, ipfsPath, "dag", "stat", "--offline", "--progress=false", root)
}

// TestExportUnknownRoot: a root the store does not hold is an error (exit
// 1) naming it.
func TestExportUnknownRoot(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	ipfsSync(t, repo, "-q", "sync", widthTree.get(t))
	const missing = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
	car := filepath.Join(t.TempDir(), "x.car")
	res := ipfsSync(t, repo, "export", missing, "--car", car)
	if res.Code != 1 || !strings.Contains(res.Stderr, missing) {
		t.Fatalf("want exit 1 naming %s, got %s", missing, res)
	}
}
