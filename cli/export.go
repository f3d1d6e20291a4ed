package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
	ucli "github.com/urfave/cli/v2"

	"github.com/ipfs-sync/ipfs-sync/export"
	"github.com/ipfs-sync/ipfs-sync/remote"
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
   ipfs-sync export NEW --since OLD --api http://127.0.0.1:5001 --car delta.car
                                       the same, with OLD only on the kubo node

` + exitHelp,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "car", Usage: "output `FILE` (- for stdout); required"},
			&ucli.StringFlag{Name: "since", Usage: "only the blocks not under root `OLD` (what a node holding OLD lacks)"},
			&ucli.StringFlag{Name: "api", EnvVars: []string{"IPFS_SYNC_API"}, Usage: "read OLD's blocks this repository lacks from this kubo RPC `URL` (block/get)"},
			fromFlag("OLD's blocks"),
		},
		Action: exportAction,
	}
}

// exportAction writes ROOT's DAG, or with --since its delta, as a CAR.
func exportAction(c *ucli.Context) error {
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
	old := cid.Undef
	if since := c.String("since"); since != "" {
		if old, err = cid.Decode(since); err != nil {
			return usageError{fmt.Errorf("--since %q is not a CID: %w", since, err)}
		}
	}
	src, err := targetSource(c)
	if err != nil {
		return err
	}
	store, err := openReader(c)
	if err != nil {
		return err
	}
	defer store.Close()
	bs := store.Blockstore()
	if src != nil && old.Defined() {
		// Only OLD's directories and file roots are read: the
		// walk never opens what both roots share.
		bs = remote.New(bs, src, nil)
	}
	has, err := store.Blockstore().Has(c.Context, root)
	if err != nil {
		return fmt.Errorf("export %s: %w", root, err)
	}
	if !has {
		return fmt.Errorf("export %s: not in the repository %s", root, store.Dir())
	}
	out := c.String("car")
	write := func(w io.Writer) (export.Stats, error) {
		if old.Defined() {
			return export.CARSince(c.Context, bs, old, root, w)
		}
		return export.CAR(c.Context, bs, root, w)
	}
	var st export.Stats
	if out == "-" {
		st, err = write(c.App.Writer)
	} else {
		st, err = export.ToFile(out, write)
	}
	if err != nil {
		return fmt.Errorf("export %s: %w", root, err)
	}
	if !c.Bool("quiet") && out != "-" {
		fmt.Fprintf(c.App.ErrWriter, "%s: %d blocks, %s\n", out, st.Blocks, humanBytes(st.Bytes))
	}
	return nil
}
