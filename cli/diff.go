package cli

import (
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	ucli "github.com/urfave/cli/v2"

	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/sync"
)

// errDiffers is verify's answer when the tree does not match the root.
var errDiffers = errors.New("the tree does not match the root")

func diffCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "diff",
		Usage:     "list the paths that differ between two roots",
		ArgsUsage: "OLD NEW",
		Description: `Walks both roots side by side and prints each changed path, in the itemised format
of 'sync --dry-run' ('+' added, '-' removed, '*' changed with reasons). Identical subtrees
have equal CIDs and are skipped unread, so the cost follows the size of the change.

EXAMPLES:
   ipfs-sync diff $(ipfs-sync --json log ./mirror | sed -n '2p' | jq -r .root) $(ipfs-sync --json log ./mirror | sed -n '1p' | jq -r .root)
   ipfs-sync --json diff OLD NEW        one JSON object per change

` + exitHelp,
		Action: func(c *ucli.Context) error {
			if c.NArg() != 2 {
				return usageError{errors.New("diff needs OLD and NEW")}
			}
			var roots [2]cid.Cid
			for i := range roots {
				var err error
				if roots[i], err = cid.Decode(c.Args().Get(i)); err != nil {
					return usageError{fmt.Errorf("%q is not a CID: %w", c.Args().Get(i), err)}
				}
			}
			store, err := openReader(c)
			if err != nil {
				return err
			}
			defer store.Close()
			tree := diff.Tree{DAG: dagService(store.Blockstore())}
			return tree.Roots(c.Context, roots[0], roots[1], func(ch diff.Change) { printChange(c, ch) })
		},
	}
}

func verifyCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "verify",
		Usage:     "check that a directory matches a root",
		ArgsUsage: "SRC ROOT",
		Description: `Exits 0 if and only if SRC matches ROOT: the same entries, types, sizes, modes and
mtimes (as far as ROOT stores them). --checksum compares every file's content too.
Otherwise lists the differences, as 'sync --dry-run' does, and exits 1. Nothing is written.

EXAMPLES:
   ipfs-sync verify /srv/mirror bafy...
   ipfs-sync verify --checksum /srv/mirror bafy...

` + exitHelp,
		Flags: append(append([]ucli.Flag{
			&ucli.BoolFlag{Name: "checksum", Aliases: []string{"c"}, Usage: "compare file contents too"},
		}, filterFlags()...), profileFlags()...),
		Action: func(c *ucli.Context) error {
			if c.NArg() != 2 {
				return usageError{errors.New("verify needs SRC and ROOT")}
			}
			if _, err := cid.Decode(c.Args().Get(1)); err != nil {
				return usageError{fmt.Errorf("ROOT %q is not a CID: %w", c.Args().Get(1), err)}
			}
			p, filter, err := importFlags(c)
			if err != nil {
				return err
			}
			store, err := openExistingDryRun(c)
			if err != nil {
				return err
			}
			defer store.Close()
			// The index of a ref whose root this is spares reading every
			// file's root block; a dry run never writes to it.
			name := "verify"
			if refs, err := store.Refs(); err == nil {
				for _, r := range refs {
					if cur, _ := r.Current(); cur.Root == c.Args().Get(1) {
						name = r.Name
					}
				}
			}
			differs := false
			_, err = sync.Run(c.Context, store, sync.Options{
				Src: c.Args().Get(0), Name: name, Profile: p,
				Filter:   filter,
				Base:     c.Args().Get(1),
				Checksum: c.Bool("checksum"),
				DryRun:   true,
				Item: func(ch diff.Change) {
					differs = true
					printChange(c, ch)
				},
				Warn: func(path string, err error) { warnf(c, "%v", err) },
			})
			if err != nil {
				return err
			}
			if differs {
				return errDiffers
			}
			if !c.Bool("quiet") && !c.Bool("json") {
				fmt.Fprintf(c.App.ErrWriter, "%s matches %s\n", c.Args().Get(0), c.Args().Get(1))
			}
			return nil
		},
	}
}
