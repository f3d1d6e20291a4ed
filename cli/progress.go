package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	gosync "sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	ucli "github.com/urfave/cli/v2"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/ipfs-sync/ipfs-sync/sync"
)

// How progress is shown on stderr.
const (
	progressOff   = iota // nothing (still answers SIGUSR1)
	progressBars         // live bars, on a terminal
	progressLines        // a plain status line every progressEvery, for logs
)

const (
	progressTick  = 200 * time.Millisecond // sampling and bar refresh: 5 per second
	progressEvery = 5 * time.Second        // status lines in progressLines mode
	rateWindow    = 3 * time.Second        // time constant of the smoothed rates
)

// Progress shows a sync's sync.Progress counters on stderr while it runs:
// bars for walk, hash and write on a terminal, or a status line every few
// seconds with --progress on a non-terminal. It is also an io.Writer for
// warnings: while bars are up, what is written appears above them.
// Results never go through it; they go to stdout.
type Progress struct {
	out     io.Writer
	mode    int
	every   time.Duration     // status line period in progressLines mode
	console mpb.ConsoleWriter // if set, the bars' terminal (tests)

	src   *sync.Progress
	start time.Time

	mu   gosync.Mutex // guards the rates
	rate rates

	wmu     gosync.RWMutex // held for writing while bars go up or down
	bars    *mpb.Progress  // nil unless bars are up
	barList []*mpb.Bar

	cancel context.CancelFunc
	done   chan struct{}
	status *statusSignal
}

// rates are smoothed per-second rates of the counters.
type rates struct {
	at                    time.Time
	entries, read, blocks int64   // counters at the last sample
	entryRate, readRate   float64 // per second
	blockRate             float64
	sampled               bool
}

// newProgress decides how the sync run by c shows progress: bars when stderr
// is a terminal (unless -q, or itemised changes go to the same terminal on
// stdout), status lines with --progress elsewhere, nothing with
// --progress=false.
func newProgress(c *ucli.Context, itemsOnStdout bool) *Progress {
	p := &Progress{out: c.App.ErrWriter, every: progressEvery}
	if st, ok := c.App.Metadata[statusKey].(*statusSignal); ok {
		p.status = st
	}
	explicit, on := c.IsSet("progress"), c.Bool("progress")
	switch {
	case explicit && !on:
		p.mode = progressOff
	case isTerminal(c.App.ErrWriter):
		p.mode = progressBars
		if !explicit && (c.Bool("quiet") || itemsOnStdout && isTerminal(c.App.Writer)) {
			p.mode = progressOff
		}
	case on:
		p.mode = progressLines
	}
	return p
}

// isTerminal reports whether w is a terminal that understands cursor
// movement (not TERM=dumb).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) && os.Getenv("TERM") != "dumb"
}

// Start shows src until Stop. It answers SIGUSR1 with a status line.
func (p *Progress) Start(ctx context.Context, src *sync.Progress) {
	p.src, p.start = src, time.Now()
	p.rate = rates{at: p.start}
	ctx, p.cancel = context.WithCancel(ctx)
	p.done = make(chan struct{})
	if p.mode == progressBars {
		p.startBars()
	}
	if p.status != nil {
		p.status.set(p)
	}
	go p.loop(ctx)
}

// Stop takes the bars down (nothing of them is left on the terminal) and
// returns once they are gone, so that what is printed next stands alone.
func (p *Progress) Stop() {
	if p.cancel == nil {
		return
	}
	if p.status != nil {
		p.status.set(nil)
	}
	p.cancel()
	<-p.done
	p.wmu.Lock()
	bars := p.bars
	p.bars = nil
	p.wmu.Unlock()
	if bars != nil {
		for _, b := range p.barList {
			b.Abort(true) // drop: removed from the screen
		}
		bars.Wait()
	}
}

// Write writes to stderr, above the bars while they are up.
func (p *Progress) Write(b []byte) (int, error) {
	p.wmu.RLock()
	defer p.wmu.RUnlock()
	if p.bars != nil {
		if n, err := p.bars.Write(b); err == nil {
			return n, nil
		}
	}
	return p.out.Write(b)
}

func (p *Progress) loop(ctx context.Context) {
	defer close(p.done)
	tick := time.NewTicker(progressTick)
	defer tick.Stop()
	lastLine := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			p.sample(now)
			if p.mode == progressLines && now.Sub(lastLine) >= p.every {
				lastLine = now
				fmt.Fprintln(p, p.Status())
			}
		}
	}
}

// sample updates the smoothed rates and the bars.
func (p *Progress) sample(now time.Time) {
	entries, read, blocks := p.src.Entries.Load(), p.src.Read.Load(), p.src.Blocks.Load()
	p.mu.Lock()
	r := &p.rate
	if dt := now.Sub(r.at).Seconds(); dt > 0 {
		// Exponential smoothing whose weight follows the elapsed time,
		// so a late tick counts for what it covers.
		alpha := 1 - math.Exp(-dt/rateWindow.Seconds())
		if !r.sampled {
			alpha = 1
		}
		ewma := func(avg *float64, delta int64) { *avg += alpha * (float64(delta)/dt - *avg) }
		ewma(&r.entryRate, entries-r.entries)
		ewma(&r.readRate, read-r.read)
		ewma(&r.blockRate, blocks-r.blocks)
		r.at, r.entries, r.read, r.blocks, r.sampled = now, entries, read, blocks, true
	}
	p.mu.Unlock()

	p.wmu.RLock()
	defer p.wmu.RUnlock()
	if p.bars != nil {
		walk, hash, write := p.barList[0], p.barList[1], p.barList[2]
		walk.SetCurrent(entries)
		hash.SetTotal(p.src.Queued.Load(), false)
		hash.SetCurrent(read)
		write.SetCurrent(blocks)
	}
}

// snapshot is the counters now, with the smoothed rates.
type snapshot struct {
	elapsed                              time.Duration
	entries, queued, read, files, blocks int64
	walkDone                             bool
	entryRate, readRate, blockRate       float64
}

func (p *Progress) snapshot() snapshot {
	s := snapshot{
		elapsed:  time.Since(p.start),
		entries:  p.src.Entries.Load(),
		queued:   p.src.Queued.Load(),
		read:     p.src.Read.Load(),
		files:    p.src.FilesDone.Load(),
		blocks:   p.src.Blocks.Load(),
		walkDone: p.src.WalkDone.Load(),
	}
	p.mu.Lock()
	s.entryRate, s.readRate, s.blockRate = p.rate.entryRate, p.rate.readRate, p.rate.blockRate
	sampled := p.rate.sampled
	p.mu.Unlock()
	if secs := s.elapsed.Seconds(); !sampled && secs > 0 {
		// Before the first sample: the averages so far.
		s.entryRate, s.readRate, s.blockRate = float64(s.entries)/secs, float64(s.read)/secs, float64(s.blocks)/secs
	}
	return s
}

// percent is how much of what is queued has been read.
func (s snapshot) percent() float64 {
	if s.queued <= 0 {
		return 100
	}
	return min(100, 100*float64(s.read)/float64(s.queued))
}

// eta is the time left to read what is queued, known once the walk is done
// (until then more may be queued).
func (s snapshot) eta() (time.Duration, bool) {
	if !s.walkDone || s.readRate <= 0 {
		return 0, false
	}
	left := float64(s.queued - s.read)
	if left < 0 {
		left = 0
	}
	return time.Duration(left / s.readRate * float64(time.Second)).Round(time.Second), true
}

// Status is one line saying how far the run is, e.g.
//
//	ipfs-sync: 12s: walked 120000 entries (done); read 1.2 GiB of 3.4 GiB (35%), 150.0 MiB/s, ETA 15s; 450 files; 789 new blocks
func (p *Progress) Status() string {
	s := p.snapshot()
	walk := "walking"
	if s.walkDone {
		walk = "done"
	}
	eta := ""
	if d, ok := s.eta(); ok {
		eta = ", ETA " + d.String()
	}
	return fmt.Sprintf("ipfs-sync: %s: walked %d entries (%s); read %s of %s (%.0f%%), %s/s%s; %d files; %d new blocks",
		s.elapsed.Round(time.Second), s.entries, walk, humanBytes(s.read), humanBytes(s.queued), s.percent(),
		humanBytes(int64(s.readRate)), eta, s.files, s.blocks)
}

func (p *Progress) startBars() {
	opts := []mpb.ContainerOption{
		mpb.WithOutput(p.out),
		mpb.WithRefreshRate(progressTick),
		mpb.WithWidth(32), // the fillers; decorators take what they need
	}
	if p.console != nil {
		opts = append(opts, mpb.WithConsoleWriter(p.console))
	}
	bars := mpb.New(opts...)
	label := func(s string) mpb.BarOption {
		return mpb.PrependDecorators(decor.Name(s, decor.WC{W: 6, C: decor.DindentRight}))
	}
	stats := func(f func(snapshot) string) mpb.BarOption {
		return mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return f(p.snapshot()) }))
	}
	// Walk and write have no total: a spinner ("done" once the walk is) and
	// a count with its rate.
	walk := bars.New(0, mpb.SpinnerStyle().PositionLeft(), label("walk"),
		mpb.BarFillerMiddleware(func(spin mpb.BarFiller) mpb.BarFiller {
			return mpb.BarFillerFunc(func(w io.Writer, st decor.Statistics) error {
				if p.src.WalkDone.Load() {
					width := st.AvailableWidth
					if st.RequestedWidth > 0 && st.RequestedWidth < width {
						width = st.RequestedWidth
					}
					_, err := fmt.Fprintf(w, "%-*s", width, "done")
					return err
				}
				return spin.Fill(w, st)
			})
		}),
		stats(func(s snapshot) string {
			if s.walkDone {
				return fmt.Sprintf("%d entries", s.entries)
			}
			return fmt.Sprintf("%d entries  %.0f/s", s.entries, s.entryRate)
		}))
	// Hash: bytes read of bytes queued; the total grows while the walk runs.
	hash := bars.New(0, mpb.BarStyle(), label("hash"),
		stats(func(s snapshot) string {
			out := fmt.Sprintf("%s / %s  %.0f%%  %s/s  %d files", humanBytes(s.read), humanBytes(s.queued), s.percent(), humanBytes(int64(s.readRate)), s.files)
			if d, ok := s.eta(); ok {
				out += "  ETA " + d.String()
			}
			return out
		}))
	write := bars.New(0, mpb.SpinnerStyle().PositionLeft(), label("write"),
		stats(func(s snapshot) string { return fmt.Sprintf("%d new blocks  %.0f/s", s.blocks, s.blockRate) }))
	p.wmu.Lock()
	p.bars, p.barList = bars, []*mpb.Bar{walk, hash, write}
	p.wmu.Unlock()
}

// statusSignal prints a status line to stderr on each SIGUSR1 for as long as
// a command runs (cli.Run installs it first, so the signal never kills the
// process): the running sync's progress, or how long the command has run.
type statusSignal struct {
	w     io.Writer
	start time.Time
	cur   atomic.Pointer[Progress]
	ch    chan os.Signal
	done  chan struct{}
}

const statusKey = "ipfs-sync/status"

func watchStatus(w io.Writer) *statusSignal {
	s := &statusSignal{w: w, start: time.Now(), ch: make(chan os.Signal, 1), done: make(chan struct{})}
	signal.Notify(s.ch, syscall.SIGUSR1)
	go func() {
		for {
			select {
			case <-s.done:
				return
			case <-s.ch:
				if p := s.cur.Load(); p != nil {
					fmt.Fprintln(p, p.Status())
				} else {
					fmt.Fprintf(s.w, "ipfs-sync: %s: running\n", time.Since(s.start).Round(time.Second))
				}
			}
		}
	}()
	return s
}

func (s *statusSignal) set(p *Progress) { s.cur.Store(p) }

func (s *statusSignal) stop() {
	signal.Stop(s.ch)
	close(s.done)
}
