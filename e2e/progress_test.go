//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// progressTree is 2000 files of 512 KiB (1000 MiB of distinct random bytes)
// in 20 directories: with --workers 1 a sync of it takes a second or more
// even where hashing is fast (500 MiB took 0.5 s on one core with SHA-NI),
// long enough for several refreshes of the bars.
var progressTree = &sharedTree{name: "progress", build: func(dir string) error {
	rng := rand.NewChaCha8([32]byte{'p', 'r', 'o', 'g'})
	buf := make([]byte, 512<<10)
	for d := range 20 {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		for f := range 100 {
			rng.Read(buf)
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", f)), buf, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}}

// syncEnv is the environment without IPFS_SYNC_* (which would change what
// the runs do).
func syncEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IPFS_SYNC_") {
			env = append(env, kv)
		}
	}
	return env
}

// runOnPTY runs ipfs-sync ARGS with stderr on a 120x40 pseudo-terminal and
// stdout on a pipe, and returns both and the exit code.
func runOnPTY(t *testing.T, args ...string) (stdout, terminal string, code int) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, syncBin, args...)
	cmd.Env = append(syncEnv(), "TERM=xterm") // not "dumb", whatever runs the test
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close() // the child has its own; reads on ptmx end when it exits
	var term bytes.Buffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&term, ptmx) // ends with EIO once the child's side is closed
		close(copied)
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("ipfs-sync %s: timed out", strings.Join(args, " "))
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	select {
	case <-copied:
	case <-time.After(10 * time.Second):
		t.Fatal("the pseudo-terminal did not close")
	}
	return out.String(), term.String(), code
}

// erase is what mpb's console writer sends to redraw (cursor up N lines,
// erase to the end of the screen); after the last one the bars are gone.
const erase = "\x1b[J"

// checkJSONSummary checks stdout is the JSON summary of a sync of
// progressTree and returns how long the run took.
func checkJSONSummary(t *testing.T, stdout string) (seconds float64) {
	t.Helper()
	var sum struct {
		Root    string  `json:"root"`
		Files   int     `json:"files"`
		Seconds float64 `json:"seconds"`
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%q", err, stdout)
	}
	if sum.Root == "" || sum.Files != 2000 {
		t.Errorf("summary: root %q, %d files", sum.Root, sum.Files)
	}
	return sum.Seconds
}

// minSeconds is how long a run must take for the checks on what it shows
// meanwhile to mean something: a few refreshes (5 a second) of the bars.
const minSeconds = 0.6

// tooFast skips the test when the machine synced progressTree too fast to
// show progress; the tree would have to grow.
func tooFast(t *testing.T, seconds float64) {
	t.Helper()
	if seconds < minSeconds {
		t.Skipf("the sync took %.2fs, too fast to show progress (want at least %.1fs; make progressTree bigger)", seconds, minSeconds)
	}
}

// summarySeconds is the run time in sync's summary line on stderr.
func summarySeconds(stderr string) float64 {
	m := regexp.MustCompile(` in (\d+\.\d)s\r?\n$`).FindStringSubmatch(stderr)
	if m == nil {
		return 0
	}
	var s float64
	fmt.Sscan(m[1], &s)
	return s
}

// TestProgressBarsOnTTY: with stderr on a terminal, sync draws the walk,
// hash and write bars there, takes them down before anything else is
// printed, and keeps stdout (--json) clean.
func TestProgressBarsOnTTY(t *testing.T) {
	src := progressTree.get(t)

	t.Run("json", func(t *testing.T) {
		repo := filepath.Join(t.TempDir(), "repo")
		stdout, term, code := runOnPTY(t, "--repo", repo, "--json", "sync", "--workers", "1", src)
		if code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nterminal: %q", code, stdout, term)
		}
		tooFast(t, checkJSONSummary(t, stdout))
		for _, want := range []string{"walk", "hash", "write", " entries", "MiB / ", " files", " new blocks", "[", erase} {
			if !strings.Contains(term, want) {
				t.Errorf("terminal lacks %q:\n%q", want, term)
			}
		}
		// The hash rate, in whatever unit it has reached.
		if !regexp.MustCompile(`\d [KMGT]?i?B/s`).MatchString(term) {
			t.Errorf("terminal lacks a hash rate:\n%q", term)
		}
		if n := strings.Count(term, erase); n < 2 {
			t.Errorf("bars drawn %d times; want refreshes", n)
		}
		// After the last redraw nothing is left: the bars are gone, and
		// --json puts nothing else on stderr.
		if rest := term[strings.LastIndex(term, erase)+len(erase):]; rest != "" {
			t.Errorf("on the terminal after the bars: %q", rest)
		}
		if strings.Contains(stdout, "\x1b") {
			t.Errorf("escape sequences on stdout: %q", stdout)
		}
	})

	t.Run("summary after the bars", func(t *testing.T) {
		repo := filepath.Join(t.TempDir(), "repo")
		stdout, term, code := runOnPTY(t, "--repo", repo, "sync", "--workers", "1", src)
		if code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nterminal: %q", code, stdout, term)
		}
		tooFast(t, summarySeconds(term))
		rest := term[strings.LastIndex(term, erase)+len(erase):]
		if !regexp.MustCompile(`^2000 files \(2000 added, .*in \d+\.\ds\r?\n$`).MatchString(rest) {
			t.Errorf("after the bars, want only the summary line, got %q", rest)
		}
	})

	t.Run("--progress=false", func(t *testing.T) {
		repo := filepath.Join(t.TempDir(), "repo")
		_, term, code := runOnPTY(t, "--repo", repo, "--progress=false", "sync", "--workers", "1", src)
		if code != 0 || strings.Contains(term, "\x1b") || strings.Contains(term, "hash") {
			t.Errorf("exit %d, terminal %q; want the summary alone", code, term)
		}
	})
}

// TestProgressPiped: the same runs with stderr on a pipe show no progress.
func TestProgressPiped(t *testing.T) {
	src := progressTree.get(t)

	res := run(t, syncEnv(), syncBin, "--repo", filepath.Join(t.TempDir(), "repo"), "--json", "sync", "--workers", "1", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	checkJSONSummary(t, res.Stdout)
	if res.Stderr != "" {
		t.Errorf("--json on a pipe: stderr %q, want nothing", res.Stderr)
	}

	res = run(t, syncEnv(), syncBin, "--repo", filepath.Join(t.TempDir(), "repo"), "sync", "--workers", "1", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	if !regexp.MustCompile(`^2000 files \(2000 added, [^\n]*\n$`).MatchString(res.Stderr) {
		t.Errorf("stderr on a pipe: %q, want only the summary", res.Stderr)
	}
}

// syncedBuffer collects a child's output while the test reads it.
type syncedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var statusLineRE = regexp.MustCompile(`(?m)^ipfs-sync: \d+s: walked \d+ entries \((walking|done)\); read [^;]+ of [^;]+ \(\d+%\), [^;]+/s(, ETA \w+)?; \d+ files; \d+ new blocks$`)

// TestProgressSIGUSR1: on a pipe, without --progress, SIGUSR1 makes a
// running sync print one status line to stderr, and the sync goes on to
// finish normally.
func TestProgressSIGUSR1(t *testing.T) {
	src := progressTree.get(t)
	repo := filepath.Join(t.TempDir(), "repo")
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, syncBin, "--repo", repo, "sync", "--workers", "1", src)
	cmd.Env = syncEnv()
	var stdout, stderr syncedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// The handler is in place from the start of the run, before the
	// repository's lock file is made; signal once that exists, and again
	// until the sync itself (not only its start) has answered.
	var err error
	signals := 0
wait:
	for {
		select {
		case err = <-exited:
			break wait
		case <-time.After(50 * time.Millisecond):
		}
		if _, serr := os.Stat(filepath.Join(repo, "lock")); serr != nil || statusLineRE.MatchString(stderr.String()) {
			continue
		}
		if serr := cmd.Process.Signal(syscall.SIGUSR1); serr == nil {
			signals++
		}
	}
	if err != nil {
		t.Fatalf("after %d SIGUSR1: %v\nstderr: %s", signals, err, stderr.String())
	}
	got := stderr.String()
	if !statusLineRE.MatchString(got) {
		tooFast(t, summarySeconds(got))
		t.Fatalf("no status line after %d SIGUSR1:\n%s", signals, got)
	}
	if strings.Contains(got, "\x1b") {
		t.Errorf("escape sequences on a pipe: %q", got)
	}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "2000 files (2000 added") {
		t.Errorf("the summary is not last: %q", got)
	}
	for _, l := range lines[:len(lines)-1] {
		if !statusLineRE.MatchString(l) && !regexp.MustCompile(`^ipfs-sync: \d+s: running$`).MatchString(l) {
			t.Errorf("unexpected line on stderr: %q", l)
		}
	}
	if f := strings.Fields(stdout.String()); len(f) != 1 {
		t.Errorf("stdout %q, want the root CID", stdout.String())
	}
}
