// Command mkmirror generates a deterministic synthetic package mirror,
// applies publish cycles to it, and describes trees (internal/mirrorgen).
// The benchmarks use it; `make mkmirror` builds it into bin/.
//
//	mkmirror gen [--preset P] [--seed N] [--files N] [--bytes B] [--flat N] [--big N] [--jobs N] DIR
//	mkmirror mutate [--seed N] [--scale X] [--jobs N] DIR
//	mkmirror stats DIR
//	mkmirror fingerprint [--list] [--jobs N] DIR
//	mkmirror version
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ipfs-sync/ipfs-sync/internal/mirrorgen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: mkmirror COMMAND [flags] DIR

  gen          generate a tree in DIR (absent or empty); prints one JSON line
  mutate       apply one publish cycle to DIR in place; prints one JSON line
  stats        print the tree's stats as JSON
  fingerprint  print a SHA-256 over every path, type, mode, size, mtime,
               content and symlink target (--list: also the hashed rows)
  version      print the generator's version (trees differ across versions)

Presets (gen --preset, default tiny):
  tiny    ~500 files,   ~50 MB, 150-entry flat directory, 1 file of 8-16 MiB
  small   ~25k files,  ~1 GiB, 20,000-entry flat directory, 3 files of 50-200 MB
  medium  ~100k files, ~5 GiB, 25,000-entry flat directory, 10 files of 50-200 MB
  large   ~1M files,  ~20 GiB, 50,000-entry flat directory, 30 files of 50-200 MB

Run "mkmirror COMMAND -h" for a command's flags.
`

// run is the command with its arguments, exit code returned.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "gen":
		err = gen(args[1:], stdout, stderr)
	case "mutate":
		err = mutate(args[1:], stdout, stderr)
	case "stats":
		err = stats(args[1:], stdout, stderr)
	case "fingerprint":
		err = fingerprint(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, mirrorgen.Version)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "mkmirror: unknown command %q\n%s", args[0], usage)
		return 2
	}
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "mkmirror %s: %v\n", args[0], err)
		return 2
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "mkmirror %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

type usageError struct{ error }

// parse parses fs's flags, before or after the one directory argument.
func parse(fs *flag.FlagSet, args []string) (string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return "", err
			}
			return "", usageError{err}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		return "", usageError{fmt.Errorf("want one directory, got %d arguments", len(pos))}
	}
	return pos[0], nil
}

func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mkmirror %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func gen(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("gen", "gen [flags] DIR\n\nGenerate a deterministic mirror in DIR (absent or empty).", stderr)
	preset := fs.String("preset", "tiny", "tiny, small, medium or large")
	seed := fs.Uint64("seed", 1, "the tree is a function of the seed and the sizes")
	files := fs.Int("files", 0, "regular files, about (default: the preset's)")
	bytes := fs.String("bytes", "", "bytes in regular files, about: 300M, 2GiB, 50MB (default: the preset's)")
	flat := fs.Int("flat", -1, "entries of the flat directory cran/src/contrib (default: the preset's)")
	big := fs.Int("big", -1, "huge files (default: the preset's)")
	jobs := fs.Int("jobs", 0, "writers (default: all cores); the tree is the same for any value")
	dir, err := parse(fs, args)
	if err != nil {
		return err
	}
	p, err := mirrorgen.PresetNamed(*preset)
	if err != nil {
		return usageError{err}
	}
	if *files > 0 {
		p.Files = *files
	}
	if *bytes != "" {
		if p.Bytes, err = parseBytes(*bytes); err != nil {
			return usageError{err}
		}
	}
	if *flat >= 0 {
		p.Flat = *flat
	}
	if *big >= 0 {
		p.Big = *big
	}
	start := time.Now()
	sum, err := mirrorgen.Generate(dir, mirrorgen.Config{Preset: p, Seed: *seed, Jobs: *jobs})
	if err != nil {
		return err
	}
	return printJSON(stdout, struct {
		mirrorgen.Summary
		Preset  string  `json:"preset"`
		Seed    uint64  `json:"seed"`
		Seconds float64 `json:"seconds"`
	}{sum, p.Name, *seed, time.Since(start).Seconds()})
}

func mutate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("mutate", "mutate [flags] DIR\n\nApply one publish cycle to DIR in place: new, removed and upgraded packages,\nrewritten indexes, a few mtime-only and mode-only changes, now and then a new\nflat directory. The cycle is a function of the tree and the seed.", stderr)
	seed := fs.Uint64("seed", 1, "the cycle is a function of the tree and the seed")
	scale := fs.Float64("scale", 1, "multiply every change rate")
	jobs := fs.Int("jobs", 0, "writers (default: all cores); the tree is the same for any value")
	dir, err := parse(fs, args)
	if err != nil {
		return err
	}
	c, err := mirrorgen.Mutate(dir, mirrorgen.MutateOptions{Seed: *seed, Scale: *scale, Jobs: *jobs})
	if err != nil {
		return err
	}
	return printJSON(stdout, c)
}

func stats(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("stats", "stats DIR", stderr)
	dir, err := parse(fs, args)
	if err != nil {
		return err
	}
	s, err := mirrorgen.Stat(dir)
	if err != nil {
		return err
	}
	return printJSON(stdout, s)
}

func fingerprint(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fingerprint", "fingerprint [flags] DIR", stderr)
	list := fs.Bool("list", false, "also print the rows that are hashed, before the fingerprint")
	jobs := fs.Int("jobs", 0, "readers (default: all cores)")
	dir, err := parse(fs, args)
	if err != nil {
		return err
	}
	var w io.Writer
	if *list {
		w = stdout
	}
	fp, err := mirrorgen.Fingerprint(dir, *jobs, w)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, fp)
	return err
}

func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// parseBytes reads 300M, 2GiB, 50MB, 1.5G or a plain number: K, M, G, T
// alone or with "iB" are powers of 1024, with "B" powers of 1000.
func parseBytes(s string) (int64, error) {
	num := strings.TrimRight(s, "KMGTkmgtiBb")
	unit := strings.ToUpper(s[len(num):])
	mult := map[string]float64{"": 1, "B": 1,
		"K": 1 << 10, "KIB": 1 << 10, "KB": 1e3,
		"M": 1 << 20, "MIB": 1 << 20, "MB": 1e6,
		"G": 1 << 30, "GIB": 1 << 30, "GB": 1e9,
		"T": 1 << 40, "TIB": 1 << 40, "TB": 1e12}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || v < 0 {
		return 0, fmt.Errorf("bytes %q: want a size like 300M, 2GiB or 50MB", s)
	}
	return int64(v * mult), nil
}
