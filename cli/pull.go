package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/mattn/go-isatty"
	ucli "github.com/urfave/cli/v2"

	"github.com/ipfs-sync/ipfs-sync/pull"
)

func pullCommand() *ucli.Command {
	return &ucli.Command{
		Name:        "pull",
		Usage:       "make a directory exactly match a root, fetching only what changed",
		ArgsUsage:   "ROOT DEST",
		Description: pullHelp + exitHelp,
		Flags:       pullFlags(),
		Action:      runPull,
	}
}

// pullHelp is pull's --help text, before the exit codes.
const pullHelp = `Writes the directory ROOT into DEST: files, directories, symlinks (written as links,
never followed), mode and mtime. Blocks come from the trustless gateways given with
--from (several: requests are spread over them, and one that fails is skipped), else
from the local repository; every block is checked against its CID.

Entries of DEST that ROOT lacks: a pull removes what earlier pulls wrote there (as they
left it); anything else (added by hand, or changed since pull wrote it) is kept and
named in a warning. A first pull into a directory that is not empty is refused, naming
some of its entries: --delete makes DEST exactly ROOT (rsync --delete: everything ROOT
lacks is removed), --no-delete writes ROOT over it and removes nothing.

Modes are applied without the setuid, setgid and sticky bits, as tar does for a user
other than root: a ROOT from any gateway could otherwise make setuid-root files when
pull runs as root. --preserve-special-bits applies them as ROOT stores them.

Run again with a newer ROOT, it fetches only what changed: the repository (--repo, also
with --from) keeps, for each DEST, the root pulled last, what was written where, and the
directory blocks, so unchanged directories cost nothing, unchanged files are left alone
(size, mtime and mode as written), renamed files are copied locally, and a changed file
reuses the chunks its old version still holds. Nothing of this is kept in DEST: it is an
exact copy of ROOT. Each file is written as a new file and put in place once complete;
an interrupted pull, run again, resumes. A DEST that contains the repository, or lies
inside it, is refused.

A ROOT with a bad name (empty, ".", "..", containing "/" or NUL), a name twice in one
directory, or more than the limits allow is refused with the path in the DAG that is
wrong, and nothing is ever written outside DEST.

EXAMPLES:
   ipfs-sync pull bafy... /srv/mirror --from http://mirror.example:8080
   ipfs-sync pull bafy... /srv/mirror --from https://a.example --from https://b.example
   ipfs-sync --json pull bafy... ./mirror            from the local repository

`

func pullFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringSliceFlag{Name: "from", Usage: "trustless gateway `URL` to fetch from (repeatable; default: the local repository)"},
		&ucli.BoolFlag{Name: "delete", Usage: "remove every entry of DEST that is not in ROOT, also what no pull wrote (and allow a first pull into a non-empty DEST)"},
		&ucli.BoolFlag{Name: "no-delete", Usage: "remove nothing from DEST (and allow a first pull into a non-empty DEST)"},
		&ucli.BoolFlag{Name: "preserve-special-bits", Usage: "apply the setuid, setgid and sticky bits ROOT stores (without it they are left out)"},
		&ucli.IntFlag{Name: "max-depth", Value: pull.DefaultMaxDepth, Usage: "refuse directories nested deeper than `N`"},
		&ucli.Int64Flag{Name: "max-entries", Value: pull.DefaultMaxEntries, Usage: "refuse a ROOT with more than `N` entries"},
		&ucli.StringFlag{Name: "max-bytes", Usage: "refuse a ROOT whose files total more than `SIZE` (bytes, or with K/M/G/T[iB]; default: what DEST's filesystem has free plus what pull's files there hold)"},
		&ucli.DurationFlag{Name: "timeout", Value: pull.DefaultReadTimeout, Usage: "give a gateway up (and ask the next) when it sends nothing for `DURATION`"},
		&ucli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "entries fetched at once (default: max(8, 2×CPUs))"},
	}
}

func runPull(c *ucli.Context) error {
	opts, err := pullOptions(c)
	if err != nil {
		return err
	}
	if from := c.StringSlice("from"); len(from) > 0 {
		g, err := pull.NewGateways(from)
		if err != nil {
			return usageError{err}
		}
		g.ReadTimeout = c.Duration("timeout")
		opts.Source = g
	} else {
		store, err := openReader(c)
		if err != nil {
			return err
		}
		defer store.Close()
		opts.Source = &pull.Store{BS: store.Blockstore()}
	}
	// A status line on a terminal, unless --progress=false.
	tty := !c.Bool("quiet") && !c.Bool("json") && pullIsTerminal(c.App.ErrWriter) &&
		(!c.IsSet("progress") || c.Bool("progress"))
	if tty {
		opts.Progress = func(p pull.Progress) {
			fmt.Fprintf(c.App.ErrWriter, "\r\x1b[K%d entries, %d files written, %s fetched", p.Entries, p.FilesWritten, humanBytes(p.Fetched.Bytes))
		}
	}
	res, err := pull.Run(c.Context, opts)
	if tty {
		fmt.Fprint(c.App.ErrWriter, "\r\x1b[K")
	}
	if err != nil {
		return fmt.Errorf("pull %s into %s: %w", opts.Root, opts.Dest, err)
	}
	return pullReport(c, opts, res)
}

// pullOptions reads pull's arguments and flags; a mistake in them is a
// usage error. The source is left to the caller.
func pullOptions(c *ucli.Context) (pull.Options, error) {
	if c.NArg() != 2 {
		return pull.Options{}, usageError{errors.New("pull needs ROOT and DEST")}
	}
	root, err := cid.Decode(c.Args().Get(0))
	if err != nil {
		return pull.Options{}, usageError{fmt.Errorf("ROOT %q is not a CID: %w", c.Args().Get(0), err)}
	}
	var maxBytes int64
	if s := c.String("max-bytes"); s != "" {
		if maxBytes, err = pullParseBytes(s); err != nil || maxBytes == 0 {
			return pull.Options{}, usageError{fmt.Errorf("--max-bytes: %q is not a size", s)}
		}
	}
	if c.Duration("timeout") <= 0 {
		return pull.Options{}, usageError{errors.New("--timeout must be more than 0")}
	}
	repo, err := repoDir(c)
	if err != nil {
		return pull.Options{}, err
	}
	del, err := pullDeletion(c)
	if err != nil {
		return pull.Options{}, err
	}
	return pull.Options{
		Root: root, Dest: c.Args().Get(1), Repo: repo,
		Delete:              del,
		PreserveSpecialBits: c.Bool("preserve-special-bits"),
		MaxDepth:            c.Int("max-depth"),
		MaxEntries:          c.Int64("max-entries"),
		MaxBytes:            maxBytes,
		Jobs:                c.Int("jobs"),
	}, nil
}

// pullDeletion is what --delete and --no-delete ask to remove.
func pullDeletion(c *ucli.Context) (pull.Deletion, error) {
	switch {
	case c.Bool("delete") && c.Bool("no-delete"):
		return 0, usageError{errors.New("--delete and --no-delete say opposite things")}
	case c.Bool("delete"):
		return pull.DeleteAll, nil
	case c.Bool("no-delete") || (c.IsSet("delete") && !c.Bool("delete")):
		return pull.DeleteNone, nil
	}
	return pull.DeleteWritten, nil
}

// pullReport warns of what DEST kept that ROOT lacks and prints the
// result: JSON, a line on stderr, or nothing with --quiet.
func pullReport(c *ucli.Context, opts pull.Options, res pull.Result) error {
	if opts.Delete == pull.DeleteWritten {
		for _, p := range res.KeptPaths {
			warnf(c, "%s: not in ROOT, and not as a pull wrote it: kept (--delete removes it)", filepath.Join(opts.Dest, p))
		}
		if more := res.Kept - int64(len(res.KeptPaths)); more > 0 {
			warnf(c, "and %d more entries not in ROOT kept", more)
		}
	}
	switch {
	case c.Bool("json"):
		return printJSON(c.App.Writer, res)
	case !c.Bool("quiet"):
		fmt.Fprintf(c.App.ErrWriter, "%s: %d files (%d written, %d copied locally), %d dirs, %d symlinks, %s; %d deleted, %d not in ROOT kept; fetched %s in %d blocks, reused %s locally, in %.1fs\n",
			res.Dest, res.Files, res.FilesWritten, res.FilesCopied, res.Dirs, res.Symlinks, humanBytes(res.Bytes), res.Deleted, res.Kept,
			humanBytes(res.BytesFetched), res.BlocksFetched, humanBytes(res.BytesReused), res.Seconds)
	}
	return nil
}

// pullParseBytes reads a size: plain bytes, or a number with K, M, G, T, P
// (powers of 1024, with or without "iB").
func pullParseBytes(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGTP", t[n-1]); i >= 0 {
			mult = int64(1) << (10 * (i + 1))
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > (1<<63-1)/mult {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return v * mult, nil
}

func pullIsTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd())
}
