package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/ipfs/go-cid"
	ucli "github.com/urfave/cli/v2"

	"github.com/ipfs-sync/ipfs-sync/export"
)

func exportCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "export",
		Usage:     "write the DAG under a root as a CAR file",
		ArgsUsage: "ROOT",
		Description: `Writes every block under ROOT, once each, as a CARv1 whose only root is ROOT.
'ipfs dag import FILE' loads it into kubo; any CAR-aware pinning service takes it.

EXAMPLES:
   ipfs-sync export bafy... --car mirror.car
   ipfs-sync export bafy... --car - | ipfs dag import
   ipfs-sync export NEW --since OLD --car delta.car   only what a holder of OLD lacks

` + exitHelp,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "car", Usage: "output `FILE` (- for stdout); required"},
			&ucli.StringFlag{Name: "since", Usage: "only the blocks not under root `OLD` (what a node holding OLD lacks)"},
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return usageError{errors.New("export needs exactly one ROOT")}
			}
			if c.String("car") == "" {
				return usageError{errors.New("export needs --car FILE (or --car - for stdout)")}
			}
			root, err := cid.Decode(c.Args().First())
			if err != nil {
				return usageError{fmt.Errorf("ROOT %q is not a CID: %w", c.Args().First(), err)}
			}
			store, err := openReader(c)
			if err != nil {
				return err
			}
			defer store.Close()
			out := c.String("car")
			w := c.App.Writer
			var f *os.File
			if out != "-" {
				if f, err = os.Create(out); err != nil {
					return fmt.Errorf("create CAR: %w", err)
				}
				defer f.Close()
				w = f
			}
			var st export.Stats
			if since := c.String("since"); since != "" {
				old, derr := cid.Decode(since)
				if derr != nil {
					return usageError{fmt.Errorf("--since %q is not a CID: %w", since, derr)}
				}
				st, err = export.CARSince(c.Context, store.Blockstore(), old, root, w)
			} else {
				st, err = export.CAR(c.Context, store.Blockstore(), root, w)
			}
			if err != nil {
				return fmt.Errorf("export %s: %w", root, err)
			}
			if f != nil {
				if err := f.Close(); err != nil {
					return fmt.Errorf("write %s: %w", out, err)
				}
			}
			if !c.Bool("quiet") && out != "-" {
				fmt.Fprintf(c.App.ErrWriter, "%s: %d blocks, %s\n", out, st.Blocks, humanBytes(st.Bytes))
			}
			return nil
		},
	}
}
