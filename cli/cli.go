// Package cli owns the command line: commands, flags, output formats and
// the mapping of errors to exit codes. It turns flags into the engine's
// Options and prints what the engine returns; it holds no sync logic.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ipfs/boxo/blockservice"
	bstore "github.com/ipfs/boxo/blockstore"
	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ipld "github.com/ipfs/go-ipld-format"
	ucli "github.com/urfave/cli/v2"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
)

// Run runs the command line args (args[0] is the program name) and returns
// the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	configure(app) // IPFS_SYNC_* environment variables, the repository's config.json
	// SIGUSR1 prints a status line, from the start to the end of the run.
	status := watchStatus(stderr)
	defer status.stop()
	app.Metadata = map[string]any{statusKey: status}
	// Bare `ipfs-sync SRC` is shorthand for `ipfs-sync sync SRC`.
	args, err := shorthand(app, args)
	if err == nil {
		err = app.RunContext(ctx, interspersed(app, args))
	}
	if err != nil {
		msg := err.Error()
		if ctx.Err() != nil {
			// Whatever the interrupted step was saying, the cause is the
			// signal (SIGINT, SIGTERM).
			err, msg = ctx.Err(), "interrupted"
		}
		fmt.Fprintf(stderr, "ipfs-sync: %s\n", escapeName(msg))
	}
	return exitCode(err)
}

func newApp(stdout, stderr io.Writer) *ucli.App {
	app := &ucli.App{
		Name:  "ipfs-sync",
		Usage: "keep a large directory tree in IPFS, re-adding only what changed",
		UsageText: `ipfs-sync [global options] SRC               same as: ipfs-sync sync SRC
   ipfs-sync [global options] command [options] [arguments...]`,
		Description: `ipfs-sync imports a directory (a Debian pool, an npm or CRAN mirror, ...) into a
UnixFS DAG whose root CID is identical to what kubo's 'ipfs add -r' gives with the
same settings, and keeps it in a local repository.

Run it again after each publish: only what changed is read, chunked and written.

EXAMPLES:
   ipfs-sync ./mirror                          import ./mirror, print the root CID
   ipfs-sync sync -n ./mirror                  what changed since the last run (+ - *), nothing written
   ipfs-sync --json sync ./mirror              the same run, a JSON summary for scripts
   ipfs-sync sync ./mirror --api http://127.0.0.1:5001 --publish mirror
                                               and hand the new blocks to kubo, pin, publish
   ipfs-sync sync ./mirror --car delta.car     or write only the new blocks as a CAR
   ipfs-sync import --name mirror delta.car    on another host: store that CAR, move the ref
   ipfs-sync serve                             serve the repository as a trustless gateway
   ipfs-sync pull ROOT /srv/copy --from URL    materialise a root elsewhere, incrementally
   ipfs-sync log ./mirror                      the roots ./mirror has had

` + exitHelp,
		Writer:         stdout,
		ErrWriter:      stderr,
		ExitErrHandler: func(*ucli.Context, error) {}, // exit codes are mapped in Run
		OnUsageError: func(_ *ucli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "repo", EnvVars: []string{"IPFS_SYNC_REPO"}, Usage: "repository `DIR` (default: $XDG_DATA_HOME/ipfs-sync or ~/.local/share/ipfs-sync)"},
			&ucli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the result (the root CID)"},
			&ucli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
			&ucli.DurationFlag{Name: "retry-lock", Usage: "wait up to `DURATION` (e.g. 10m) for another process's lock instead of exiting 4"},
			&ucli.BoolFlag{Name: "progress", Usage: "show sync's progress on stderr: bars on a terminal (the default there), else a status line every 5s; --progress=false: none (SIGUSR1 prints one status line at any time)"},
		},
		Commands: []*ucli.Command{syncCommand(), exportCommand(), importCommand(), pushCommand(), serveCommand(), diffCommand(), verifyCommand(), logCommand(), refsCommand(), gcCommand(), fsckCommand(), pullCommand()},
	}
	for _, cmd := range app.Commands {
		// A bad flag is a usage error (exit 2) with a one-line message,
		// not a page of help.
		cmd.OnUsageError = app.OnUsageError
	}
	return app
}

// shorthand inserts "sync" before the first positional argument when it
// is not a command name. Sync takes one SRC: a first word that is no
// command followed by more arguments is a mistyped command (`synk ./x`),
// said so, not a sync of two sources.
func shorthand(app *ucli.App, args []string) ([]string, error) {
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return args, nil
		}
		if strings.HasPrefix(a, "-") {
			if !strings.Contains(a, "=") && globalTakesValue(app, a) {
				i++
			}
			continue
		}
		if app.Command(a) != nil || a == "help" {
			return args, nil
		}
		if positionalAfter(app, args[i+1:]) {
			return nil, usageError{fmt.Errorf("%q is not a command%s (see 'ipfs-sync --help')", a, closestCommand(app, a))}
		}
		out := append([]string{}, args[:i]...)
		out = append(out, "sync")
		return append(out, args[i:]...), nil
	}
	return args, nil
}

// positionalAfter reports whether args, the rest of a bare `ipfs-sync
// SRC ...`, hold another positional argument (flags and their values
// aside).
func positionalAfter(app *ucli.App, args []string) bool {
	flags := append(slices.Clone(app.Flags), app.Command("sync").Flags...)
	for k := 0; k < len(args); k++ {
		a := args[k]
		switch {
		case a == "--":
			return k+1 < len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			if !strings.Contains(a, "=") && takesValue(flags, a) {
				k++
			}
		default:
			return true
		}
	}
	return false
}

// closestCommand is `; did you mean "CMD"?` for the command nearest to
// word (at most two edits away), else "".
func closestCommand(app *ucli.App, word string) string {
	best, bestDist := "", 3
	for _, cmd := range app.Commands {
		if d := editDistance(word, cmd.Name); d < bestDist {
			best, bestDist = cmd.Name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// interspersed moves a command's flags that follow its arguments in front
// of them (`export ROOT --car F` as well as `export --car F ROOT`): urfave
// cli v2 stops parsing flags at the first argument.
func interspersed(app *ucli.App, args []string) []string {
	i := 1
	for ; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			break
		}
		if !strings.Contains(a, "=") && takesValue(app.Flags, a) {
			i++
		}
	}
	if i >= len(args) {
		return args
	}
	cmd := app.Command(args[i])
	if cmd == nil {
		return args
	}
	var globals, flags, pos []string
	rest := args[i+1:]
	for k := 0; k < len(rest); k++ {
		a := rest[k]
		switch {
		case a == "--":
			pos = append(pos, rest[k:]...)
			k = len(rest)
		case strings.HasPrefix(a, "-") && a != "-":
			dst := &flags
			if !hasFlag(cmd.Flags, a) && hasFlag(app.Flags, a) {
				dst = &globals // `sync SRC --json` means the global --json
			}
			*dst = append(*dst, a)
			if !strings.Contains(a, "=") && takesValue(append(cmd.Flags, app.Flags...), a) && k+1 < len(rest) {
				k++
				*dst = append(*dst, rest[k])
			}
		default:
			pos = append(pos, a)
		}
	}
	out := append([]string{}, args[:i]...)
	out = append(out, globals...)
	out = append(out, args[i])
	out = append(out, flags...)
	return append(out, pos...)
}

func hasFlag(fs []ucli.Flag, flag string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(flag, "-"), "=")
	for _, f := range fs {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

func globalTakesValue(app *ucli.App, flag string) bool {
	return takesValue(app.Flags, flag)
}

func takesValue(fs []ucli.Flag, flag string) bool {
	name := strings.TrimLeft(flag, "-")
	for _, f := range fs {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*ucli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}

func repoDir(c *ucli.Context) (string, error) {
	if dir := c.String("repo"); dir != "" {
		return dir, nil
	}
	return blockstore.DefaultDir()
}

// openStore opens the repository for writing, under its lock, creating
// it on first use: for sync and import, the commands that create one.
func openStore(c *ucli.Context) (*blockstore.Store, error) {
	dir, err := repoDir(c)
	if err != nil {
		return nil, err
	}
	return blockstore.OpenWait(c.Context, dir, c.Duration("retry-lock"))
}

// openExisting is openStore for a repository that must exist already: a
// mistyped --repo is an error, not a new empty repository.
func openExisting(c *ucli.Context) (*blockstore.Store, error) {
	dir, err := repoDir(c)
	if err != nil {
		return nil, err
	}
	if err := blockstore.Exists(dir); err != nil {
		return nil, noRepository(err)
	}
	return blockstore.OpenWait(c.Context, dir, c.Duration("retry-lock"))
}

// openDryRun opens the repository under its lock, changing nothing; where
// there is none yet, the run sees an empty one and none is created.
func openDryRun(c *ucli.Context) (*blockstore.Store, error) {
	dir, err := repoDir(c)
	if err != nil {
		return nil, err
	}
	return blockstore.OpenDryRun(dir)
}

// openExistingDryRun is openDryRun for a repository that must exist.
func openExistingDryRun(c *ucli.Context) (*blockstore.Store, error) {
	dir, err := repoDir(c)
	if err != nil {
		return nil, err
	}
	if err := blockstore.Exists(dir); err != nil {
		return nil, noRepository(err)
	}
	return blockstore.OpenDryRun(dir)
}

// openReader opens the repository for reading, beside a running sync.
func openReader(c *ucli.Context) (*blockstore.Store, error) {
	dir, err := repoDir(c)
	if err != nil {
		return nil, err
	}
	s, err := blockstore.OpenReader(dir)
	return s, noRepository(err)
}

// noRepository adds to a missing repository's error where one comes from.
func noRepository(err error) error {
	if errors.Is(err, blockstore.ErrNoRepository) {
		return fmt.Errorf("%w (only 'ipfs-sync sync' and 'import' create one: is --repo right?)", err)
	}
	return err
}

// dagService reads DAG nodes from bs, offline.
func dagService(bs bstore.Blockstore) ipld.DAGService {
	return mdag.NewDAGService(blockservice.New(bs, nil))
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	return enc.Encode(v)
}

func warnf(c *ucli.Context, format string, a ...any) {
	fmt.Fprintf(c.App.ErrWriter, "ipfs-sync: warning: %s\n", escapeName(fmt.Sprintf(format, a...)))
}
