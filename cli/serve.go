package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/gateway"
)

// refreshEvery is how often serve looks for indexes a sync or gc changed:
// a stat of the packs directory, and a listing when it moved.
const refreshEvery = time.Second

func serveCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "serve",
		Usage: "serve the repository as a trustless IPFS HTTP gateway",
		Description: `Serves every block in the repository at /ipfs/{cid}: raw blocks (?format=raw or
Accept: application/vnd.ipld.raw) and CARs (?format=car, with dag-scope and entity-bytes),
so a mirror host is an HTTP provider any IPFS client (and 'ipfs-sync pull') can use. It
reads the store without taking its lock, so it keeps serving while 'sync' runs; within
a second of a 'gc' it stops serving what gc collected and lets go of the packs gc deleted.

A root the repository does not hold is a 404 before any byte, and no error answer carries
a cache header; a CAR that fails part way is cut off, never ended as if complete.

EXAMPLES:
   ipfs-sync serve                               on 127.0.0.1:8080
   ipfs-sync serve --listen 0.0.0.0:8080 --browse
   curl -H 'Accept: application/vnd.ipld.car' http://127.0.0.1:8080/ipfs/bafy... > root.car

` + exitHelp,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "`ADDR` to listen on"},
			&ucli.BoolFlag{Name: "browse", Usage: "also serve files and directory listings to browsers (deserialized responses)"},
			&ucli.IntFlag{Name: "max-connections", Value: gateway.DefaultMaxConnections, Usage: "connections open at once; more wait to be accepted"},
			&ucli.IntFlag{Name: "max-requests", Value: gateway.DefaultMaxRequests, Usage: "requests served at once; more are answered 429 with Retry-After"},
			&ucli.DurationFlag{Name: "read-header-timeout", Value: gateway.DefaultReadHeaderTimeout, Usage: "time a client has to send a request's headers"},
			&ucli.DurationFlag{Name: "idle-timeout", Value: gateway.DefaultIdleTimeout, Usage: "time a keep-alive connection may wait for its next request"},
			&ucli.DurationFlag{Name: "stall-timeout", Value: gateway.DefaultStallTimeout, Usage: "longest a response may wait on a client that takes none of it; a slow download that progresses is never cut"},
		},
		Action: func(c *ucli.Context) error {
			opts := gateway.Options{
				Listen:            c.String("listen"),
				Browse:            c.Bool("browse"),
				MaxConnections:    c.Int("max-connections"),
				MaxRequests:       c.Int("max-requests"),
				ReadHeaderTimeout: c.Duration("read-header-timeout"),
				IdleTimeout:       c.Duration("idle-timeout"),
				StallTimeout:      c.Duration("stall-timeout"),
			}
			if opts.MaxConnections <= 0 || opts.MaxRequests <= 0 || opts.ReadHeaderTimeout <= 0 || opts.IdleTimeout <= 0 || opts.StallTimeout <= 0 {
				return usageError{errors.New("serve's limits and timeouts must be positive")}
			}
			store, err := openReader(c)
			if err != nil {
				return err
			}
			defer store.Close()
			ctx, cancel := context.WithCancelCause(c.Context)
			defer cancel(nil)
			go refresh(ctx, cancel, store)
			err = gateway.Serve(ctx, store.Blockstore(), opts, func(addr string) {
				fmt.Fprintf(c.App.ErrWriter, "serving %s on http://%s/ipfs/\n", store.Dir(), addr)
			})
			if err == nil && c.Context.Err() == nil {
				err = context.Cause(ctx) // refresh stopped it
			}
			return err
		},
	}
}

// refresh keeps a serving store up to the repository until ctx ends; an
// error (the repository gone) stops the server.
func refresh(ctx context.Context, stop context.CancelCauseFunc, store *blockstore.Store) {
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := store.Refresh(); err != nil {
				stop(err)
				return
			}
		}
	}
}
