package cli

import (
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	ucli "github.com/urfave/cli/v2"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
)

// keptRoots is the newest keep distinct roots of every ref (keep <= 0: all)
// that gc has not collected, each once.
func keptRoots(store *blockstore.Store, keep int) ([]cid.Cid, error) {
	refs, err := store.Refs()
	if err != nil {
		return nil, err
	}
	var roots []cid.Cid
	seen := map[string]bool{}
	for _, r := range refs {
		newest := r.Newest(keep)
		for _, v := range r.History {
			if v.Collected || !newest[v.Root] || seen[v.Root] {
				continue
			}
			seen[v.Root] = true
			c, err := decodeRoot(r.Name, v.Root)
			if err != nil {
				return nil, err
			}
			roots = append(roots, c)
		}
	}
	return roots, nil
}

func decodeRoot(ref, root string) (cid.Cid, error) {
	c, err := cid.Decode(root)
	if err != nil {
		return cid.Undef, fmt.Errorf("ref %q names a bad root %q: %w", ref, root, err)
	}
	return c, nil
}

func gcCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "gc",
		Usage: "remove blocks that no kept root uses",
		Description: `Keeps every block under the newest --keep distinct roots of every ref (default: all
roots not collected before) and removes the rest. A sync that changed nothing records
the same root again; it does not count twice. Older versions are marked "collected" in
'log' first; their blocks may be gone, so they can no longer be exported or diffed.
It takes the repository lock, so it never runs beside a sync; 'serve' keeps serving.

EXAMPLES:
   ipfs-sync gc --keep 3          keep the last three roots of every ref

` + exitHelp,
		Flags: []ucli.Flag{
			&ucli.IntFlag{Name: "keep", Usage: "distinct roots to keep per ref, newest first (0: all)"},
		},
		Action: func(c *ucli.Context) error {
			if c.Int("keep") < 0 {
				return usageError{errors.New("--keep must not be negative")}
			}
			store, err := openExisting(c)
			if err != nil {
				return err
			}
			defer store.Close()
			kept, err := store.Retire(c.Int("keep"))
			if err != nil {
				return err
			}
			roots := make([]cid.Cid, len(kept))
			for i, k := range kept {
				if roots[i], err = decodeRoot("", k); err != nil {
					return err
				}
			}
			res, err := store.GC(c.Context, roots)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			if !c.Bool("quiet") {
				fmt.Fprintf(c.App.ErrWriter, "kept %d blocks (%s) under %d roots; removed %d blocks, freed %s\n",
					res.Kept, humanBytes(res.BytesKept), res.Roots, res.Removed, humanBytes(res.BytesFreed))
			}
			return nil
		},
	}
}

// errFsck is fsck's answer when blocks are missing or corrupt.
var errFsck = errors.New("the repository has missing or corrupt blocks")

func fsckCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "fsck",
		Usage: "check that every block of every kept root is present and intact",
		Description: `Reads every block under the roots of every ref (or the newest --keep of each) and
checks it hashes to its CID. Each missing or corrupt block is printed with its CID and
the path it was reached by; the exit status is then 1. A block a --nocopy sync stored as
a reference to a file that changed since is printed as unavailable and counted apart:
it is not damage, and alone it leaves the exit status 0. It takes the repository lock.

EXAMPLES:
   ipfs-sync fsck
   ipfs-sync fsck --keep 1        only the current root of each ref
   ipfs-sync fsck --repair && ipfs-sync sync /srv/mirror    replace corrupt blocks from the source

` + exitHelp,
		Flags: []ucli.Flag{
			&ucli.IntFlag{Name: "keep", Usage: "distinct roots to check per ref, newest first (0: all)"},
			&ucli.BoolFlag{Name: "repair", Usage: "remove corrupt blocks; the next sync reads the affected files again"},
		},
		Action: func(c *ucli.Context) error {
			store, err := openExisting(c)
			if err != nil {
				return err
			}
			defer store.Close()
			roots, err := keptRoots(store, c.Int("keep"))
			if err != nil {
				return err
			}
			res, err := store.Fsck(c.Context, roots, c.Bool("repair"), func(b cid.Cid, path string, err error) {
				fmt.Fprintf(c.App.Writer, "%s\t%s\t%v\n", b, path, err)
			})
			if err != nil {
				return err
			}
			if c.Bool("json") {
				if err := printJSON(c.App.Writer, res); err != nil {
					return err
				}
			} else if !c.Bool("quiet") {
				fmt.Fprintf(c.App.ErrWriter, "checked %d blocks (%s) under %d roots: %d missing, %d corrupt\n",
					res.Blocks, humanBytes(res.Bytes), res.Roots, res.Missing, res.Corrupt)
				if res.Unavailable > 0 {
					fmt.Fprintf(c.App.ErrWriter, "%d blocks unavailable: stored by sync --nocopy as references to files that changed since (not damage; the ref's next sync references the new bytes)\n", res.Unavailable)
				}
			}
			if res.Missing+res.Corrupt > 0 {
				return errFsck
			}
			return nil
		},
	}
}
