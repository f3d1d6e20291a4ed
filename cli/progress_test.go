package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs-sync/ipfs-sync/sync"
)

// lockedBuffer is a bytes.Buffer safe for the writers of a test.
type lockedBuffer struct {
	mu  gosync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fakeTerminal is a 120x40 terminal writing to out, as mpb's own console
// writer does: each flush first moves up over the previous one and erases.
type fakeTerminal struct {
	bytes.Buffer
	out io.Writer
}

func (f *fakeTerminal) IsTerminal() bool               { return true }
func (f *fakeTerminal) GetTermSize() (int, int, error) { return 120, 40, nil }
func (f *fakeTerminal) Flush(lines int) error {
	if _, err := f.WriteTo(f.out); err != nil {
		return err
	}
	if lines > 0 {
		fmt.Fprintf(&f.Buffer, "\x1b[%dA\x1b[J", lines)
	}
	return nil
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

var statusLine = regexp.MustCompile(`(?m)^ipfs-sync: \d+s: walked (\d+) entries \((walking|done)\); read (.+) of (.+) \((\d+)%\), (.+)/s(, ETA \d+\w+)?; (\d+) files; (\d+) new blocks$`)

func TestStatusLine(t *testing.T) {
	var src sync.Progress
	src.Entries.Store(1200)
	src.Queued.Store(4 << 20)
	src.Read.Store(1 << 20)
	src.FilesDone.Store(7)
	src.Blocks.Store(42)
	p := &Progress{out: new(bytes.Buffer), every: progressEvery}
	p.Start(context.Background(), &src)
	defer p.Stop()

	line := p.Status()
	m := statusLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("status line %q is not in the expected form", line)
	}
	if m[1] != "1200" || m[2] != "walking" || m[3] != "1.0 MiB" || m[4] != "4.0 MiB" || m[5] != "25" || m[8] != "7" || m[9] != "42" {
		t.Errorf("status line %q: wrong counts %q", line, m[1:])
	}
	if m[7] != "" {
		t.Errorf("status line %q: an ETA while more may be queued", line)
	}

	// Once the walk is done and a rate is known, the ETA appears.
	src.WalkDone.Store(true)
	waitFor(t, "a read rate", func() bool {
		src.Read.Add(64 << 10)
		time.Sleep(progressTick)
		return p.snapshot().readRate > 0
	})
	if line := p.Status(); !strings.Contains(line, "(done)") || !strings.Contains(line, ", ETA ") {
		t.Errorf("status line %q: want the walk done and an ETA", line)
	}
}

// TestProgressLines: without a terminal, --progress prints a status line
// every so often, and nothing after Stop.
func TestProgressLines(t *testing.T) {
	var out lockedBuffer
	var src sync.Progress
	p := &Progress{out: &out, mode: progressLines, every: 250 * time.Millisecond}
	p.Start(context.Background(), &src)
	for i := range 3 {
		src.Entries.Add(10)
		want := i + 1
		waitFor(t, "a status line", func() bool { return len(statusLine.FindAllString(out.String(), -1)) >= want })
	}
	p.Stop()
	n := len(statusLine.FindAllString(out.String(), -1))
	time.Sleep(2 * p.every)
	got := out.String()
	if m := len(statusLine.FindAllString(got, -1)); m != n {
		t.Errorf("%d status lines after Stop", m-n)
	}
	if strings.Contains(got, "\x1b[") {
		t.Errorf("escape sequences in status lines: %q", got)
	}
	for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
		if !statusLine.MatchString(l) {
			t.Errorf("not a status line: %q", l)
		}
	}
}

// TestProgressOff: mode off writes nothing at all.
func TestProgressOff(t *testing.T) {
	var out lockedBuffer
	var src sync.Progress
	p := &Progress{out: &out, mode: progressOff, every: 10 * time.Millisecond}
	p.Start(context.Background(), &src)
	src.Entries.Add(10)
	time.Sleep(5 * progressTick)
	p.Stop()
	if got := out.String(); got != "" {
		t.Errorf("wrote %q", got)
	}
}

// TestProgressBars: the bars render (labels, counts), what is written
// meanwhile appears above them, and Stop takes them down: the output ends
// with the terminal's erase sequence and nothing of the bars after it.
func TestProgressBars(t *testing.T) {
	var out lockedBuffer
	var src sync.Progress
	p := &Progress{out: &out, mode: progressBars, every: progressEvery, console: &fakeTerminal{out: &out}}
	p.Start(context.Background(), &src)
	src.Entries.Store(321)
	src.Queued.Store(3 << 20)
	src.Read.Store(1 << 20)
	src.Blocks.Store(17)
	waitFor(t, "the bars", func() bool { return strings.Contains(out.String(), "17 new blocks") })
	if _, err := p.Write([]byte("ipfs-sync: warning: something\n")); err != nil {
		t.Fatal(err)
	}
	src.WalkDone.Store(true)
	waitFor(t, "the warning", func() bool { return strings.Contains(out.String(), "warning: something") })
	p.Stop()
	got := out.String()
	for _, want := range []string{"walk", "hash", "write", "321 entries", "1.0 MiB / 3.0 MiB", "33%", "17 new blocks", "[", "done"} {
		if !strings.Contains(got, want) {
			t.Errorf("bars lack %q:\n%s", want, got)
		}
	}
	const erase = "\x1b[J"
	i := strings.LastIndex(got, erase)
	if i < 0 {
		t.Fatalf("no erase sequence:\n%q", got)
	}
	if rest := got[i+len(erase):]; rest != "" {
		t.Errorf("left on the terminal after Stop: %q", rest)
	}
	// Stopped: writes go straight through.
	if _, err := p.Write([]byte("after\n")); err != nil || !strings.HasSuffix(out.String(), "after\n") {
		t.Errorf("write after Stop: %v, %q", err, out.String())
	}
}

// TestStatusSignal: SIGUSR1 prints one status line: the running Progress's,
// or, with none, how long the command has been running.
func TestStatusSignal(t *testing.T) {
	var out lockedBuffer
	st := watchStatus(&out)
	defer st.stop()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle status line", func() bool { return strings.Contains(out.String(), ": running") })

	var src sync.Progress
	src.Entries.Store(5)
	p := &Progress{out: &out, mode: progressOff, every: progressEvery, status: st}
	p.Start(context.Background(), &src)
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the status line", func() bool { return statusLine.MatchString(out.String()) })
	p.Stop()
	if got := strings.Count(out.String(), "\n"); got != 2 {
		t.Errorf("want 2 lines, got %q", out.String())
	}
}

// TestProgressNotOnPipes: through cli.Run with stderr a buffer (not a
// terminal), sync prints nothing on stderr but its summary.
func TestProgressNotOnPipes(t *testing.T) {
	clearEnv(t)
	src := tree(t)
	res := runCLI(t, "--repo", t.TempDir(), "sync", src)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if lines := strings.Split(strings.TrimSpace(res.stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "3 files") {
		t.Errorf("stderr is not just the summary: %q", res.stderr)
	}
}
