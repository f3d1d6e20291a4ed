package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
)

func logCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "log",
		Usage:     "list the roots a ref has had, newest first",
		ArgsUsage: "[NAME]",
		Description: `NAME defaults to the current directory's absolute path, the ref a plain
'ipfs-sync sync .' records. Each line gives the root, when its run started,
and the run's counts.

EXAMPLES:
   ipfs-sync log /srv/mirror
   ipfs-sync --json log debian | head -1      the current root, as JSON

` + exitHelp,
		Action: func(c *ucli.Context) error {
			if c.NArg() > 1 {
				return usageError{errors.New("log takes at most one NAME")}
			}
			name := c.Args().First()
			// A path that exists names the ref its sync recorded (SRC's
			// absolute path, a directory or a file); else NAME is the
			// ref's name as given (--name).
			var names []string
			if name == "" {
				wd, err := os.Getwd()
				if err != nil {
					return err
				}
				names = []string{wd}
			} else if abs, err := filepath.Abs(name); err == nil && exists(abs) {
				names = []string{abs, name}
			} else {
				names = []string{name}
			}
			store, err := openReader(c)
			if err != nil {
				return err
			}
			defer store.Close()
			var ref blockstore.Ref
			ok := false
			for _, n := range names {
				if ref, ok, err = store.Ref(n); err != nil {
					return err
				}
				if ok {
					break
				}
			}
			if !ok {
				return fmt.Errorf("no ref %q in %s (see 'ipfs-sync refs')", names[0], store.Dir())
			}
			for i := len(ref.History) - 1; i >= 0; i-- {
				printVersion(c, ref.History[i])
			}
			return nil
		},
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func printVersion(c *ucli.Context, v blockstore.Version) {
	if c.Bool("json") {
		_ = printJSON(c.App.Writer, struct {
			Root      string          `json:"root"`
			Time      time.Time       `json:"time"`
			Profile   string          `json:"profile"`
			Summary   json.RawMessage `json:"summary,omitempty"`
			Collected bool            `json:"collected,omitempty"`
		}{v.Root, v.Time, v.Profile, v.Summary, v.Collected})
		return
	}
	var s struct {
		CAR         string  `json:"path"` // set by import: the CAR the root came in
		Blocks      int64   `json:"blocks"`
		BlocksNew   int64   `json:"blocks_new"`
		Files       int64   `json:"files"`
		Bytes       int64   `json:"bytes"`
		BytesNew    int64   `json:"bytes_new"`
		Seconds     float64 `json:"seconds"`
		FileChanges struct {
			Added, Removed, Modified int64
		} `json:"file_changes"`
	}
	_ = json.Unmarshal(v.Summary, &s)
	collected := ""
	if v.Collected {
		collected = " (collected)"
	}
	if s.CAR != "" {
		fmt.Fprintf(c.App.Writer, "%s  %s  imported from %s: %d blocks (%d new), %s%s\n",
			v.Root, v.Time.Local().Format("2006-01-02 15:04:05"), escapeName(s.CAR), s.Blocks, s.BlocksNew, humanBytes(s.Bytes), collected)
		return
	}
	fmt.Fprintf(c.App.Writer, "%s  %s  %d files, %s; +%d -%d *%d, %s new, %.1fs%s\n",
		v.Root, v.Time.Local().Format("2006-01-02 15:04:05"), s.Files, humanBytes(s.Bytes),
		s.FileChanges.Added, s.FileChanges.Removed, s.FileChanges.Modified, humanBytes(s.BytesNew), s.Seconds, collected)
}

func refsCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "refs",
		Usage: "list the refs in the repository with their current roots",
		Description: `EXAMPLES:
   ipfs-sync refs
   ipfs-sync --json refs

` + exitHelp,
		Action: func(c *ucli.Context) error {
			store, err := openReader(c)
			if err != nil {
				return err
			}
			defer store.Close()
			refs, err := store.Refs()
			if err != nil {
				return err
			}
			for _, r := range refs {
				cur, _ := r.Current()
				if c.Bool("json") {
					_ = printJSON(c.App.Writer, struct {
						Name       string    `json:"name"`
						NameBase64 []byte    `json:"name_base64,omitempty"`
						Root       string    `json:"root"`
						Time       time.Time `json:"time"`
						Versions   int       `json:"versions"`
					}{r.Name, rawIfNotUTF8(r.Name), cur.Root, cur.Time, len(r.History)})
					continue
				}
				fmt.Fprintf(c.App.Writer, "%s\t%s\t%d versions\n", cur.Root, escapeName(r.Name), len(r.History))
			}
			return nil
		},
	}
}
