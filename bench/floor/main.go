//go:build linux

// Command floor measures the machine's floor for an import: it reads, or
// reads and SHA-256-hashes, every regular file under a directory on
// runtime.NumCPU() workers and prints the throughput. bench/run.sh runs it
// in read mode (which also warms the page cache), in sha256 mode (the
// ceiling for any importer that hashes every byte once) and in sha256-pack
// mode: hash every file and also append it to a pack file (one per
// worker) under -dst, and syncfs(2) at the end; the ceiling for an
// importer that stores its blocks in packs, as ipfs-sync does. sha256-write
// writes each file anew instead (1024 shard directories, like a flatfs
// block store): the ceiling for an importer that keeps one file per
// block, as kubo does.
//
// Each worker reads a file 256 KiB at a time into one buffer (-buffer):
// the fastest of the sizes tried on the benchmark machine.
//
// Output, one line: "files=N bytes=N seconds=S mbps=X workers=W mode=M
// sync_seconds=S" (MB = 10^6 bytes; sync_seconds is the syncfs(2) part of
// seconds, 0 unless -dst).
//
// It builds on Linux only: each run ends in syncfs(2), as ipfs-sync's
// do there, and the figures are Linux's.
package main

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) Sum(b []byte) []byte         { return b }
func (discard) Reset()                      {}
func (discard) Size() int                   { return 0 }
func (discard) BlockSize() int              { return 1 }

// config is what the flags ask for.
type config struct {
	mode    string
	workers int
	dst     string // where copies go; "" in read and sha256 modes
	list    string // -files: the list of paths to read instead of a walk
	buffer  int    // bytes read at a time
	root    string // DIR
}

func main() {
	cfg := parseFlags()
	if err := cfg.prepareDst(); err != nil {
		fatal(err)
	}
	start := time.Now()
	r := &run{config: cfg, paths: make(chan string, 1024)}
	err := r.readAll()
	syncSecs := 0.0
	if cfg.dst != "" {
		t := time.Now()
		err = errors.Join(err, syncfs(cfg.dst))
		syncSecs = time.Since(t).Seconds()
	}
	secs := time.Since(start).Seconds()
	if err != nil {
		fatal(err)
	}
	fmt.Printf("files=%d bytes=%d seconds=%.3f mbps=%.1f workers=%d mode=%s sync_seconds=%.3f\n",
		r.files.Load(), r.total.Load(), secs, float64(r.total.Load())/secs/1e6, cfg.workers, cfg.mode, syncSecs)
}

// parseFlags reads the command line; a wrong one exits 2 with the usage.
func parseFlags() config {
	mode := flag.String("mode", "sha256", "sha256: read and hash every byte; read: only read; sha256-pack: hash and append a copy to a pack under -dst; sha256-write: hash and write a copy as a file under -dst")
	workers := flag.Int("workers", runtime.NumCPU(), "files processed at once")
	dst := flag.String("dst", "", "`DIR` (absent or empty) for -mode sha256-write")
	buffer := flag.Int("buffer", 256<<10, "`BYTES` read at a time: of 128 KiB to 1 MiB, 256 KiB and 512 KiB read and hashed the fastest on the benchmark machine (~6 % faster than 1 MiB, an import's chunk), and a floor is the fastest way found to do the work")
	list := flag.String("files", "", "only the files named in `FILE`, one path relative to DIR per line (bench/large.sh: the files a publish cycle changed)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: floor [-mode sha256|read|sha256-pack|sha256-write] [-dst DIR] [-files FILE] [-workers N] [-buffer BYTES] DIR\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	ok := *mode == "sha256" || *mode == "read" || ((*mode == "sha256-write" || *mode == "sha256-pack") && *dst != "")
	if flag.NArg() != 1 || !ok || *workers < 1 || *buffer < 1 {
		flag.Usage()
		os.Exit(2)
	}
	return config{mode: *mode, workers: *workers, dst: *dst, list: *list, buffer: *buffer, root: flag.Arg(0)}
}

// prepareDst makes -dst and, for sha256-write, its shard directories.
func (cfg config) prepareDst() error {
	if cfg.dst == "" {
		return nil
	}
	if err := os.MkdirAll(cfg.dst, 0o755); err != nil {
		return err
	}
	if cfg.mode == "sha256-write" {
		for i := range shards {
			if err := os.MkdirAll(filepath.Join(cfg.dst, fmt.Sprintf("%03x", i)), 0o755); err != nil {
				return err
			}
		}
	}
	return nil
}

// run is one pass over the files: the paths the walk sends the workers,
// what they have read, and the first error one of them met.
type run struct {
	config
	paths        chan string
	files, total atomic.Int64
	seq          atomic.Int64 // names the packs and the written files
	errOnce      sync.Once
	err          error
}

func (r *run) fail(err error) { r.errOnce.Do(func() { r.err = err }) }

// readAll sends every file to the workers and waits for them.
func (r *run) readAll() error {
	var wg sync.WaitGroup
	for range r.workers {
		wg.Go(r.work)
	}
	var walkErr error
	if r.list != "" {
		walkErr = fromList(r.root, r.list, r.paths)
	} else {
		walkErr = filepath.WalkDir(r.root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				r.paths <- p
			}
			return nil
		})
	}
	close(r.paths)
	wg.Wait()
	return errors.Join(walkErr, r.err)
}

// work reads, hashes and copies the files it receives, as the mode says.
func (r *run) work() {
	var h hash.Hash = discard{}
	if r.mode != "read" {
		h = sha256.New()
	}
	buf := make([]byte, r.buffer)
	var pack *os.File
	if r.mode == "sha256-pack" {
		var err error
		if pack, err = os.Create(filepath.Join(r.dst, fmt.Sprintf("%d.pack", r.seq.Add(1)))); err != nil {
			r.fail(err)
			return
		}
		defer pack.Close()
	}
	for p := range r.paths {
		out := ""
		if r.dst != "" && pack == nil {
			n := r.seq.Add(1)
			out = filepath.Join(r.dst, fmt.Sprintf("%03x", n%shards), fmt.Sprintf("%d.data", n))
		}
		n, err := hashFile(p, out, pack, h, buf)
		if err != nil {
			r.fail(err)
			continue
		}
		r.files.Add(1)
		r.total.Add(n)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "floor:", err)
	os.Exit(1)
}

const shards = 1024

// fromList sends root/<line> for every non-empty line of the file list.
func fromList(root, list string, paths chan<- string) error {
	f, err := os.Open(list)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			paths <- filepath.Join(root, line)
		}
	}
	return sc.Err()
}

// hashFile hashes the file at p and, if out is set, writes a copy there;
// if pack is set, appends a copy to it.
func hashFile(p, out string, pack *os.File, h hash.Hash, buf []byte) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h.Reset()
	var w io.Writer = struct{ io.Writer }{h}
	if pack != nil {
		w = io.MultiWriter(h, pack)
	}
	var o *os.File
	if out != "" {
		if o, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
			return 0, err
		}
		w = io.MultiWriter(h, o)
	}
	n, err := io.CopyBuffer(w, struct{ io.Reader }{f}, buf)
	if o != nil {
		if cerr := o.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return n, fmt.Errorf("copy %s: %w", p, err)
	}
	h.Sum(nil)
	return n, nil
}

func syncfs(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}
