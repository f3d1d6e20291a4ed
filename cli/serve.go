package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/ipfs-sync/ipfs-sync/gateway"
)

func serveCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "serve",
		Usage: "serve the repository as a trustless IPFS HTTP gateway",
		Description: `Serves every block in the repository at /ipfs/{cid}: raw blocks (?format=raw or
Accept: application/vnd.ipld.raw) and CARs (?format=car, with dag-scope and entity-bytes),
so a mirror host is an HTTP provider any IPFS client (and 'ipfs-sync pull') can use. It
reads the store without taking its lock, so it keeps serving while 'sync' runs.

EXAMPLES:
   ipfs-sync serve                               on 127.0.0.1:8080
   ipfs-sync serve --listen 0.0.0.0:8080 --browse
   curl -H 'Accept: application/vnd.ipld.car' http://127.0.0.1:8080/ipfs/bafy... > root.car

` + exitHelp,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "`ADDR` to listen on"},
			&ucli.BoolFlag{Name: "browse", Usage: "also serve files and directory listings to browsers (deserialized responses)"},
		},
		Action: func(c *ucli.Context) error {
			store, err := openReader(c)
			if err != nil {
				return err
			}
			defer store.Close()
			return gateway.Serve(c.Context, store.Blockstore(), gateway.Options{Listen: c.String("listen"), Browse: c.Bool("browse")},
				func(addr string) {
					fmt.Fprintf(c.App.ErrWriter, "serving %s on http://%s/ipfs/\n", store.Dir(), addr)
				})
		},
	}
}
