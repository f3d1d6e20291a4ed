//go:build e2e

// Package e2e runs the built ipfs-sync binary against a real kubo (the CID
// oracle) on generated trees. `make e2e` builds both binaries and passes
// them in IPFS_SYNC_BIN and IPFS_BIN.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs-sync/ipfs-sync/internal/mirrorgen"
)

// cmdTimeout bounds every child process, so a hang fails one test instead
// of the whole run.
const cmdTimeout = 3 * time.Minute

var (
	syncBin string // IPFS_SYNC_BIN
	ipfsBin string // IPFS_BIN
	// scratch holds trees shared by several tests; removed after the run.
	scratch string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	var err error
	if syncBin, err = binFromEnv("IPFS_SYNC_BIN"); err == nil {
		ipfsBin, err = binFromEnv("IPFS_BIN")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n(run `make e2e`, which builds bin/ipfs-sync and bin/ipfs and sets IPFS_SYNC_BIN and IPFS_BIN)\n", err)
		return 2
	}
	if scratch, err = os.MkdirTemp("", "ipfs-sync-e2e-"); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	if os.Getenv("E2E_KEEP") != "" {
		// Keep the shared trees to reproduce a failure by hand.
		defer fmt.Fprintf(os.Stderr, "e2e: trees kept in %s\n", scratch)
	} else {
		defer removeAll(scratch)
	}
	return m.Run()
}

// removeAll removes a tree even where a test left directories without
// write or search permission.
func removeAll(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

func binFromEnv(name string) (string, error) {
	p := os.Getenv(name)
	if p == "" {
		return "", fmt.Errorf("%s is not set", name)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s=%q: %w", name, p, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("%s=%q: %w", name, p, err)
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%s=%q is not an executable file", name, p)
	}
	return abs, nil
}

// result is a finished child process.
type result struct {
	Stdout, Stderr string
	Code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
}

// run runs bin with args and extra environment, under cmdTimeout. A process
// that cannot start or times out fails the test; a non-zero exit does not.
func run(t testing.TB, env []string, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s %s: timed out after %v\n%s", filepath.Base(bin), strings.Join(args, " "), cmdTimeout, res)
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
	}
	return res
}

// ipfsSync runs ipfs-sync on the repository repo.
func ipfsSync(t testing.TB, repo string, args ...string) result {
	t.Helper()
	return run(t, nil, syncBin, append([]string{"--repo", repo}, args...)...)
}

// syncRoot runs `ipfs-sync -q sync ARGS... SRC` on a fresh repository and
// returns the root CID it prints.
func syncRoot(t testing.TB, src string, args ...string) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	argv := append(append([]string{"-q", "sync"}, args...), src)
	res := ipfsSync(t, repo, argv...)
	if res.Code != 0 {
		t.Fatalf("ipfs-sync %s:\n%s", strings.Join(argv, " "), res)
	}
	return oneCID(t, res.Stdout)
}

func oneCID(t testing.TB, out string) string {
	t.Helper()
	f := strings.Fields(out)
	if len(f) != 1 {
		t.Fatalf("want exactly one CID on stdout, got %q", out)
	}
	return f[0]
}

// kuboOpt adjusts a fresh kubo repository's config.
type kuboOpt struct{ key, json string }

// kuboConfig sets key to the JSON value js (`ipfs config --json KEY JS`).
func kuboConfig(key, js string) kuboOpt { return kuboOpt{key, js} }

// kubo makes a fresh IPFS_PATH under t.TempDir(), initialised with
// `ipfs init --profile test,pebbleds,<profile>` and then opts, and returns
// it. The pebbleds profile changes only where blocks are kept, not a CID; it
// adds many small blocks several times faster than the default flatfs.
func kubo(t testing.TB, profile string, opts ...kuboOpt) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ipfs")
	kuboRun(t, path, "init", "--profile", "test,pebbleds,"+profile)
	for _, o := range opts {
		kuboRun(t, path, "config", "--json", o.key, o.json)
	}
	return path
}

// kuboRun runs `ipfs ARGS...` on the repository ipfsPath and fails the test
// unless it succeeds; it returns stdout.
func kuboRun(t testing.TB, ipfsPath string, args ...string) string {
	t.Helper()
	res := kuboTry(t, ipfsPath, args...)
	if res.Code != 0 {
		t.Fatalf("ipfs %s:\n%s", strings.Join(args, " "), res)
	}
	return res.Stdout
}

// kuboTry runs `ipfs ARGS...` on the repository ipfsPath.
func kuboTry(t testing.TB, ipfsPath string, args ...string) result {
	t.Helper()
	return run(t, []string{"IPFS_PATH=" + ipfsPath}, ipfsBin, args...)
}

// kuboAdd runs `ipfs add -r -H -Q --offline FLAGS... DIR` and returns the
// root CID.
func kuboAdd(t testing.TB, ipfsPath, dir string, flags ...string) string {
	t.Helper()
	args := append(append([]string{"add", "-r", "-H", "-Q", "--offline"}, flags...), dir)
	return oneCID(t, kuboRun(t, ipfsPath, args...))
}

// publishCycle applies the generator's publish cycle of that seed to the
// tree at dir, in place (mkmirror mutate --seed SEED DIR).
func publishCycle(t testing.TB, dir string, seed uint64) {
	t.Helper()
	if _, err := mirrorgen.Mutate(dir, mirrorgen.MutateOptions{Seed: seed, Scale: 1}); err != nil {
		t.Fatal(err)
	}
}

// sharedTree is a tree built once per test binary under scratch; every
// caller gets the same tree and must not change it.
type sharedTree struct {
	name  string
	build func(dir string) error
	once  sync.Once
	dir   string
	err   error
}

func (s *sharedTree) get(t testing.TB) string {
	t.Helper()
	s.once.Do(func() {
		s.dir = filepath.Join(scratch, s.name)
		s.err = fmt.Errorf("building it did not finish")
		s.err = s.build(s.dir)
	})
	if s.err != nil {
		t.Fatalf("build %s tree: %v", s.name, s.err)
	}
	return s.dir
}

// tinyTree is `mkmirror gen --preset tiny --seed 1`.
var tinyTree = &sharedTree{name: "tiny", build: func(dir string) error {
	p, err := mirrorgen.PresetNamed("tiny")
	if err == nil {
		_, err = mirrorgen.Generate(dir, mirrorgen.Config{Preset: p, Seed: 1})
	}
	return err
}}

// syncedTiny copies the tiny mirror into a new temporary directory and
// syncs the copy (flags go before the source); it returns the directory,
// the copy, the repository and the root.
func syncedTiny(t *testing.T, flags ...string) (dir, src, repo, root string) {
	t.Helper()
	dir = t.TempDir()
	src = filepath.Join(dir, "mirror")
	copyTree(t, tinyTree.get(t), src)
	repo = filepath.Join(dir, "repo")
	res := ipfsSync(t, repo, append(append([]string{"-q", "sync"}, flags...), src)...)
	if res.Code != 0 {
		t.Fatal(res)
	}
	return dir, src, repo, oneCID(t, res.Stdout)
}
