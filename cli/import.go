package cli

import (
	"errors"
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/ipfs-sync/ipfs-sync/carimport"
)

func importCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "import",
		Usage:     "store the blocks of CAR files, checked against their CIDs; record their roots",
		ArgsUsage: "FILE.car...",
		Description: `Reads each CAR (v1 or v2; - for stdin) in order, checks every block against its CID
and stores it: the counterpart of 'export' and of kubo's 'ipfs dag import'. A block
that does not match its CID stops the import before anything is recorded.

With --name, each CAR has one root, and the ref moves to each CAR's root in turn, once
the whole DAG under every one of them is in the repository: a delta CAR ('sync --car',
'export --since') completes its root together with the ref's current root or an earlier
CAR's. Otherwise no ref moves and the error lists the missing blocks. Without --name the
blocks are stored (any codec) but no ref holds them: 'gc' collects them.

The repository is created if there is none. The root CIDs are printed, one a line
(with --name, the ref's new root last).

EXAMPLES:
   ipfs-sync import --name debian full.car              a mirror host's first copy
   ipfs-sync import --name debian delta-1.car delta-2.car   then each release's delta, in order
   ipfs-sync serve                                      and serve them

` + exitHelp,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "name", Usage: "ref `NAME` to record each CAR's root under"},
		},
		Action: runImport,
	}
}

func runImport(c *ucli.Context) error {
	if c.NArg() == 0 {
		return usageError{errors.New("import needs at least one FILE.car (- for stdin)")}
	}
	paths := c.Args().Slice()
	stdin := 0
	for _, p := range paths {
		if p == "-" {
			stdin++
		}
	}
	if stdin > 1 {
		return usageError{errors.New("import reads stdin (-) once")}
	}
	store, err := openStore(c)
	if err != nil {
		return err
	}
	defer store.Close()
	sum, err := carimport.Run(c.Context, store, paths, carimport.Options{Name: c.String("name"), Stdin: c.App.Reader})
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, sum)
	}
	for _, car := range sum.CARs {
		if !c.Bool("quiet") {
			fmt.Fprintf(c.App.ErrWriter, "%s: %d blocks (%d new), %s\n", escapeName(car.Path), car.Blocks, car.BlocksNew, humanBytes(car.Bytes))
		}
		for _, r := range car.Roots {
			fmt.Fprintln(c.App.Writer, r)
		}
	}
	return nil
}
