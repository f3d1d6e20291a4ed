package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"
	ucli "github.com/urfave/cli/v2"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/cluster"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/pinsvc"
	"github.com/ipfs-sync/ipfs-sync/profile"
	"github.com/ipfs-sync/ipfs-sync/push"
	"github.com/ipfs-sync/ipfs-sync/sync"
)

func profileFlags() []ucli.Flag {
	cat := "CID settings (kubo's names and meanings, applied on top of --profile):"
	return []ucli.Flag{
		&ucli.StringFlag{Name: "profile", Value: profile.V1_2025, Usage: "IPIP-499 import profile: " + strings.Join(profile.Names(), " or "), Category: cat},
		&ucli.StringFlag{Name: "metadata", Value: "mtime,mode", Usage: "UnixFS metadata to store: mtime,mode, mtime, mode or none (none gives plain profile CIDs)", Category: cat},
		&ucli.IntFlag{Name: "cid-version", Usage: "CID version, 0 or 1 (raw leaves stay as the profile sets them)", Category: cat},
		&ucli.StringFlag{Name: "hash", Usage: "multihash: sha2-256, blake2b-256, ...", Category: cat},
		&ucli.BoolFlag{Name: "raw-leaves", Usage: "raw blocks for file leaves (not with metadata, as in kubo)", Category: cat},
		&ucli.StringFlag{Name: "chunker", Usage: "size-N, rabin-MIN-AVG-MAX or buzhash", Category: cat},
		&ucli.IntFlag{Name: "max-file-links", Usage: "links per file DAG node", Category: cat},
		&ucli.BoolFlag{Name: "trickle", Usage: "trickle layout for files instead of balanced", Category: cat},
		&ucli.BoolFlag{Name: "inline", Usage: "inline blocks up to --inline-limit bytes into identity CIDs", Category: cat},
		&ucli.IntFlag{Name: "inline-limit", Value: 32, Usage: "largest block to inline with --inline", Category: cat},
		&ucli.IntFlag{Name: "max-hamt-fanout", Usage: "HAMT shard width (power of 2, 8..1024)", Category: cat},
		&ucli.IntFlag{Name: "hamt-threshold", Usage: "directory size in bytes above which it becomes a HAMT (0: never)", Category: cat},
		&ucli.StringFlag{Name: "hamt-estimation", Usage: "how directory size is measured: links or block", Category: cat},
	}
}

func filterFlags() []ucli.Flag {
	cat := "Filters (first match wins; also read from SRC/.ipfs-syncignore):"
	return []ucli.Flag{
		&ucli.BoolFlag{Name: "hidden", Value: true, Usage: "include dotfiles (--hidden=false skips them, as kubo does without -H)", Category: cat},
		&ucli.StringSliceFlag{Name: "include", Usage: "include paths matching `PATTERN` (checked before --exclude)", Category: cat},
		&ucli.StringSliceFlag{Name: "exclude", Usage: "leave out paths matching `PATTERN` (rsync/gitignore globs: *.tmp, /tmp/, **/cache/)", Category: cat},
		&ucli.StringFlag{Name: "exclude-from", Usage: "read patterns from `FILE` (one per line, !PATTERN includes)", Category: cat},
	}
}

func filterFromFlags(c *ucli.Context) (diff.Filter, error) {
	f := diff.Filter{Hidden: c.Bool("hidden")}
	for _, set := range []struct {
		patterns []string
		include  bool
	}{{c.StringSlice("include"), true}, {c.StringSlice("exclude"), false}} {
		for _, p := range set.patterns {
			r, err := diff.ParseRule(p, set.include)
			if err != nil {
				return f, usageError{err}
			}
			f.Rules = append(f.Rules, r)
		}
	}
	if from := c.String("exclude-from"); from != "" {
		rules, err := diff.ReadRules(from)
		if err != nil {
			return f, usageError{fmt.Errorf("--exclude-from: %w", err)}
		}
		f.Rules = append(f.Rules, rules...)
	}
	return f, nil
}

// importFlags reads what decides a DAG: CID settings and filters.
func importFlags(c *ucli.Context) (profile.Profile, diff.Filter, error) {
	p, err := profileFromFlags(c)
	if err != nil {
		return p, diff.Filter{}, err
	}
	f, err := filterFromFlags(c)
	return p, f, err
}

func profileFromFlags(c *ucli.Context) (profile.Profile, error) {
	var o profile.Overrides
	if c.IsSet("cid-version") {
		o.CIDVersion = ptr(c.Int("cid-version"))
	}
	if c.IsSet("hash") {
		o.Hash = ptr(c.String("hash"))
	}
	if c.IsSet("raw-leaves") {
		o.RawLeaves = ptr(c.Bool("raw-leaves"))
	}
	if c.IsSet("chunker") {
		o.Chunker = ptr(c.String("chunker"))
	}
	if c.IsSet("max-file-links") {
		o.MaxFileLinks = ptr(c.Int("max-file-links"))
	}
	if c.IsSet("trickle") {
		o.Trickle = ptr(c.Bool("trickle"))
	}
	if c.IsSet("inline") {
		o.Inline = ptr(c.Bool("inline"))
	}
	if c.IsSet("inline-limit") {
		o.InlineLimit = ptr(c.Int("inline-limit"))
	}
	if c.IsSet("max-hamt-fanout") {
		o.MaxHAMTFanout = ptr(c.Int("max-hamt-fanout"))
	}
	if c.IsSet("hamt-threshold") {
		o.HAMTThreshold = ptr(c.Int("hamt-threshold"))
	}
	if c.IsSet("hamt-estimation") {
		o.HAMTEstimation = ptr(c.String("hamt-estimation"))
	}
	o.Metadata = ptr(c.String("metadata"))
	p, err := profile.New(c.String("profile"), o)
	if err != nil {
		return p, usageError{err}
	}
	return p, nil
}

func ptr[T any](v T) *T { return &v }

func syncCommand() *ucli.Command {
	return &ucli.Command{
		Name:        "sync",
		Usage:       "import a directory (or file) and record its root CID",
		ArgsUsage:   "SRC",
		Description: syncHelp + exitHelp,
		Flags:       syncFlags(),
		Action:      runSync,
	}
}

// syncHelp is sync's --help text, before the exit codes.
const syncHelp = `Walks SRC, chunks its files on all cores, builds every directory once, bottom-up,
and stores the DAG in the repository. The ref (default: SRC's absolute path, or --name)
moves to the new root only after every block is durably stored.

Symlinks are stored as UnixFS symlinks and never followed. Hidden files are included
(rsync's behaviour; use --hidden=false for kubo's default). FIFOs, sockets and devices
are skipped with a warning (exit 3).

The default (unixfs-v1-2025 with mode and mtime) gives the same root CID as:
   ipfs init --profile test,unixfs-v1-2025
   ipfs add -r -H --raw-leaves=false --preserve-mode --preserve-mtime SRC

EXAMPLES:
   ipfs-sync sync ./pool                           import, print the root CID
   ipfs-sync sync --json --name debian ./pool      JSON summary, ref named "debian"
   ipfs-sync sync --metadata none ./pool           no mode/mtime: kubo's plain 'ipfs add -r -H'
   ipfs-sync sync --profile unixfs-v0-2015 ./pool  legacy CIDv0
   ipfs-sync --repo /tmp/r sync --api http://127.0.0.1:5001 --to-files /pool ./pool
                                                   an empty repository (CI without a cache): diff
                                                   against the root kubo holds at /pool, push the delta

`

func syncFlags() []ucli.Flag {
	return append([]ucli.Flag{
		&ucli.StringFlag{Name: "name", Usage: "ref `NAME` to record the root under (default: SRC's absolute path)"},
		&ucli.IntFlag{Name: "workers", Usage: "files read and hashed at once (default: number of CPUs)"},
		&ucli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "walk and diff only: print the itemised changes, write nothing"},
		&ucli.BoolFlag{Name: "itemize-changes", Aliases: []string{"i"}, Usage: "print the itemised changes in a real run too"},
		&ucli.BoolFlag{Name: "checksum", Aliases: []string{"c"}, Usage: "also read files that pass the quick check and compare their content (xxh3 hash)"},
		&ucli.BoolFlag{Name: "full", Usage: "ignore the previous root and import everything (same result, slower)"},
		&ucli.StringFlag{Name: "base", Usage: "diff against root `CID` instead of the ref's current root (read from the target where the repository lacks it)"},
		fromFlag("a previous root"),
		&ucli.StringFlag{Name: "car", Usage: "also write to `FILE` the blocks a node holding the ref's previous root lacks (all of the root on a ref's first sync), as a CARv1 rooted at the new root"},
	}, append(append(append(append(append(filterFlags(), nocopyFlags()...), pushFlags()...), pinningFlags()...), clusterFlags(false)...), profileFlags()...)...)
}

func runSync(c *ucli.Context) error {
	opts, err := syncOptions(c)
	if err != nil {
		return err
	}
	var kubo *push.Kubo
	var svc *pinsvc.Client
	var cl *cluster.Client
	if !opts.DryRun {
		if kubo, svc, err = syncHandOffTargets(c); err != nil {
			return err
		}
		if cl, err = newCluster(c); err != nil {
			return err
		}
	}
	if opts.Target, err = syncTarget(c); err != nil {
		return err
	}
	open := openStore
	if opts.DryRun {
		open = openDryRun
	}
	store, err := open(c)
	if err != nil {
		return err
	}
	defer store.Close()
	sum, err := syncRun(c, store, opts)
	if err != nil && !errors.Is(err, sync.ErrPartial) {
		return err
	}
	// The root is recorded: from here on it is printed, whatever the
	// hand-off to kubo does.
	pushed, pinned, handOff := syncHandOff(c, store, kubo, svc, sum)
	var handed *cluster.Result
	if cl != nil && handOff == nil {
		handed, handOff = syncCluster(c, store, cl, sum)
		if svc != nil && kubo == nil && handOff == nil {
			pinned, handOff = syncPinning(c, svc, sum, clusterOrigin{cl})
		}
	}
	if perr := syncReport(c, sum, pushed, pinned, handed, handOff); perr != nil {
		return perr
	}
	if handOff != nil {
		return handOff
	}
	return err
}

// syncOptions reads sync's argument and flags; a mistake in them is a
// usage error. Progress and warnings are left to syncRun.
func syncOptions(c *ucli.Context) (sync.Options, error) {
	if c.NArg() != 1 {
		return sync.Options{}, usageError{errors.New("sync needs exactly one SRC")}
	}
	p, filter, err := importFlags(c)
	if err != nil {
		return sync.Options{}, err
	}
	opts := sync.Options{
		Src:      c.Args().First(),
		Name:     c.String("name"),
		Profile:  p,
		Filter:   filter,
		Workers:  c.Int("workers"),
		Full:     c.Bool("full"),
		Base:     c.String("base"),
		Checksum: c.Bool("checksum"),
		DryRun:   c.Bool("dry-run"),
		CAR:      c.String("car"),
	}
	if err := nocopyOptions(c, p, &opts); err != nil {
		return sync.Options{}, err
	}
	if opts.DryRun || c.Bool("itemize-changes") {
		opts.Item = func(ch sync.Change) { printChange(c, ch) }
	}
	return opts, nil
}

// syncRun runs the sync with its progress on stderr (bars on a terminal,
// lines with --progress); warnings go through it so that they print above
// the bars.
func syncRun(c *ucli.Context, store *blockstore.Store, opts sync.Options) (sync.Summary, error) {
	prog := newProgress(c, opts.Item != nil)
	opts.Progress = &sync.Progress{}
	opts.Warn = func(path string, err error) { fmt.Fprintf(prog, "ipfs-sync: warning: %s\n", escapeName(err.Error())) }
	prog.Start(c.Context, opts.Progress)
	sum, err := sync.Run(c.Context, store, opts)
	prog.Stop() // the bars are gone before anything else is printed
	return sum, err
}

// syncHandOffTargets are the kubo node of --api and the pinning service of
// --pinning-service, each nil when not asked for. The service fetches the
// blocks over libp2p from the node that was fed them: without --api there
// is none (the repository, and serve, are no libp2p node).
func syncHandOffTargets(c *ucli.Context) (*push.Kubo, *pinsvc.Client, error) {
	var kubo *push.Kubo
	if c.IsSet("api") {
		var err error
		if kubo, err = newKubo(c); err != nil {
			return nil, nil, err
		}
	}
	svc, err := newPinning(c)
	if err != nil {
		return nil, nil, err
	}
	if svc != nil && kubo == nil && c.String("cluster") == "" {
		return nil, nil, usageError{errors.New("--pinning-service needs --api or --cluster: the service fetches the blocks from the kubo node --api feeds, or the IPFS node of the --cluster peer (this repository, and serve, are no libp2p node it could fetch from)")}
	}
	return kubo, svc, nil
}

// syncHandOff pushes the recorded root to kubo when --api asks for it,
// then to the pinning service when --pinning-service does: what each did,
// or the hand-off's error, to exit with once the root is printed.
func syncHandOff(c *ucli.Context, store *blockstore.Store, kubo *push.Kubo, svc *pinsvc.Client, sum sync.Summary) (*push.Result, *pinsvc.Result, error) {
	if kubo == nil {
		return nil, nil, nil
	}
	root := cid.MustParse(sum.Root)
	var res push.Result
	opts, err := syncPushOptions(c, sum)
	if err == nil {
		res, err = runPush(c, store, kubo, root, opts)
	}
	if err != nil {
		return nil, nil, handOffError{root: sum.Root, err: err}
	}
	if svc == nil {
		return &res, nil, nil
	}
	pinned, err := syncPinning(c, svc, sum, kubo)
	return &res, pinned, err
}

// syncPinning hands the recorded root to the pinning service, to fetch
// from origin.
func syncPinning(c *ucli.Context, svc *pinsvc.Client, sum sync.Summary, origin pinsvc.Origin) (*pinsvc.Result, error) {
	pinned, err := runPinning(c, svc, cid.MustParse(sum.Root), sum.Name, origin)
	if err != nil {
		return &pinned, handOffError{root: sum.Root, to: "the pinning service", name: sum.Name, err: err}
	}
	return &pinned, nil
}

// syncReport prints the summary: JSON, the root alone with --quiet, or the
// root on stdout and the counts (and what was pushed) on stderr.
func syncReport(c *ucli.Context, sum sync.Summary, pushed *push.Result, pinned *pinsvc.Result, handed *cluster.Result, handOff error) error {
	switch {
	case c.Bool("json"):
		out := struct {
			Root *string `json:"root"` // first, as in sync.Summary; null in a dry run
			sync.Summary
			Push      *push.Result    `json:"push,omitempty"`
			Pinning   *pinsvc.Result  `json:"pinning,omitempty"`
			Cluster   *cluster.Result `json:"cluster,omitempty"`
			PushError string          `json:"push_error,omitempty"`
		}{Summary: sum, Push: pushed, Pinning: pinned, Cluster: handed}
		if !c.Bool("dry-run") {
			out.Root = &sum.Root
		}
		if handOff != nil {
			out.PushError = handOff.Error()
		}
		return printJSON(c.App.Writer, out)
	case c.Bool("quiet"):
		if sum.Root != "" {
			fmt.Fprintln(c.App.Writer, sum.Root)
		}
	default:
		if sum.Root != "" {
			fmt.Fprintln(c.App.Writer, sum.Root)
		}
		fc := sum.FileChanges
		fmt.Fprintf(c.App.ErrWriter, "%d files (%d added, %d removed, %d modified, %d metadata only, %d unchanged), %d dirs, %d symlinks, %s; read %s, %d new blocks (%s) in %.1fs\n",
			sum.Files, fc.Added, fc.Removed, fc.Modified, fc.Metadata, fc.Unchanged, sum.Dirs, sum.Symlinks,
			humanBytes(sum.Bytes), humanBytes(sum.BytesRead), sum.BlocksWritten, humanBytes(sum.BytesNew), sum.Seconds)
		if pushed != nil {
			fmt.Fprintf(c.App.ErrWriter, "pushed to %s: %d blocks, %s\n", pushed.API, pushed.Blocks, humanBytes(pushed.Bytes))
		}
		if pinned != nil && pinned.RequestID != "" {
			fmt.Fprintln(c.App.ErrWriter, pinningLine(*pinned))
		}
		if handed != nil && handed.Pin != "" {
			fmt.Fprintln(c.App.ErrWriter, clusterLine(*handed))
		}
	}
	return nil
}

// printChange prints one itemised change: a line of text (the path
// escaped, see escapeName) or a JSON object (path_base64 beside a path
// that is not UTF-8).
func printChange(c *ucli.Context, ch diff.Change) {
	if c.Bool("json") {
		why := ""
		if ch.Why != 0 {
			why = ch.Why.String()
		}
		_ = printJSON(c.App.Writer, struct {
			Change     string `json:"change"`
			Path       string `json:"path"`
			PathBase64 []byte `json:"path_base64,omitempty"`
			Why        string `json:"why,omitempty"`
		}{string(ch.Kind), ch.Path, rawIfNotUTF8(ch.Path), why})
		return
	}
	ch.Path = escapeName(ch.Path)
	fmt.Fprintln(c.App.Writer, ch)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
