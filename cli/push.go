package cli

import (
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	ucli "github.com/urfave/cli/v2"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/cluster"
	"github.com/ipfs-sync/ipfs-sync/pinsvc"
	"github.com/ipfs-sync/ipfs-sync/push"
)

func pushFlags() []ucli.Flag {
	cat := "Publishing to kubo:"
	return []ucli.Flag{
		&ucli.StringFlag{Name: "api", EnvVars: []string{"IPFS_SYNC_API"}, Usage: "kubo RPC `URL` (http://127.0.0.1:5001 or /ip4/127.0.0.1/tcp/5001)", Category: cat},
		&ucli.StringFlag{Name: "to-files", Usage: "point this MFS `PATH` at the root", Category: cat},
		&ucli.StringFlag{Name: "publish", Usage: "publish the root under this IPNS `KEY`", Category: cat},
	}
}

func pushCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "push",
		Usage:     "send a root to a running kubo node and pin it",
		ArgsUsage: "ROOT",
		Description: `Streams the blocks kubo lacks (those not under the root last pushed to the same
API under the same --name) as one CAR into dag/import, then moves the pin from that root
to ROOT (pin/update), or pins ROOT the first time. A push that is interrupted is simply
run again.

With --pinning-service, ROOT is then handed to a remote pinning service (the IPFS
Pinning Service API): the pin named --name there is replaced by one of ROOT (or ROOT
is added), with kubo's swarm addresses as the origins the service fetches the blocks
from, and the service is polled until it reports the pin pinned or failed.

With --cluster (and no --api), ROOT goes to an IPFS Cluster instead: the blocks it lacks
(those not under the pin of --name there) as one CAR into the IPFS of the peer --cluster
names, then the pin of --name moves to ROOT (pin-update: allocated peers keep their
allocations and fetch only the new blocks); push waits until ROOT is PINNED on
--replication-min peers (--wait=false returns at once), then unpins the previous root.

EXAMPLES:
   ipfs-sync push bafy... --api http://127.0.0.1:5001
   ipfs-sync push bafy... --api /ip4/127.0.0.1/tcp/5001 --to-files /mirrors/debian --publish debian
   IPFS_SYNC_PINNING_TOKEN=... ipfs-sync push bafy... --name debian --pinning-service https://pins.example/api/v1
   IPFS_SYNC_CLUSTER_AUTH=user:pass ipfs-sync push bafy... --name debian --cluster http://10.0.0.1:9094 --replication-min 2 --replication-max 3

` + exitHelp,
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "name", Value: "default", Usage: "what is pushed is remembered per API and `NAME` (also the pin's name at --pinning-service and --cluster)"},
		}, append(append(pushFlags(), pinningFlags()...), clusterFlags(true)...)...),
		Action: pushAction,
	}
}

// pushed is push's report: kubo's, the pinning service's and the
// cluster's parts, each present when that target was given.
type pushed struct {
	*push.Result
	Pinning *pinsvc.Result  `json:"pinning,omitempty"`
	Cluster *cluster.Result `json:"cluster,omitempty"`
}

// pushAction feeds kubo first, so that a pinning service given with it
// fetches from a node that has the blocks; without --api the cluster
// peer's IPFS node is that origin.
func pushAction(c *ucli.Context) error {
	if c.NArg() != 1 {
		return usageError{errors.New("push needs exactly one ROOT")}
	}
	root, err := cid.Decode(c.Args().First())
	if err != nil {
		return usageError{fmt.Errorf("ROOT %q is not a CID: %w", c.Args().First(), err)}
	}
	cl, err := newCluster(c)
	if err != nil {
		return err
	}
	svc, err := newPinning(c)
	if err != nil {
		return err
	}
	// With --cluster and no --api the blocks go through the
	// cluster and no kubo node is fed: a pinning service fetches
	// them from the IPFS node of the --cluster peer.
	var k *push.Kubo
	if cl == nil || c.IsSet("api") {
		if k, err = newKubo(c); err != nil {
			return err
		}
	}
	store, err := openExisting(c)
	if err != nil {
		return err
	}
	defer store.Close()
	out := pushed{}
	if k != nil {
		res, err := runPush(c, store, k, root, push.Options{Name: c.String("name")})
		if err != nil {
			return err
		}
		out.Result = &res
	}
	if svc != nil && k != nil {
		pinned, perr := runPinning(c, svc, root, c.String("name"), k)
		out.Pinning, err = &pinned, perr
	}
	if cl != nil && err == nil {
		handed, cerr := runCluster(c, store, cl, root, cluster.Options{Name: c.String("name")})
		out.Cluster, err = &handed, cerr
	}
	if svc != nil && k == nil && err == nil {
		pinned, perr := runPinning(c, svc, root, c.String("name"), clusterOrigin{cl})
		out.Pinning, err = &pinned, perr
	}
	if perr := printPushed(c, out); perr != nil {
		return perr
	}
	return err
}

// printPushed prints what push did: JSON, or a line per target.
func printPushed(c *ucli.Context, out pushed) error {
	switch {
	case c.Bool("json"):
		return printJSON(c.App.Writer, out)
	case !c.Bool("quiet"):
		if r := out.Result; r != nil {
			fmt.Fprintf(c.App.ErrWriter, "pushed %s to %s: %d blocks, %s\n", r.Root, r.API, r.Blocks, humanBytes(r.Bytes))
		}
		if out.Pinning != nil && out.Pinning.RequestID != "" {
			fmt.Fprintln(c.App.ErrWriter, pinningLine(*out.Pinning))
		}
		if out.Cluster != nil && out.Cluster.Pin != "" {
			fmt.Fprintln(c.App.ErrWriter, clusterLine(*out.Cluster))
		}
	}
	return nil
}

// newKubo is the kubo node --api names (default: kubo's own default); a
// bad address is a usage error, found before anything runs.
func newKubo(c *ucli.Context) (*push.Kubo, error) {
	api := c.String("api")
	if api == "" {
		api = "http://127.0.0.1:5001"
	}
	k, err := push.NewKubo(api)
	if err != nil {
		return nil, usageError{err}
	}
	return k, nil
}

// runPush pushes root with opts, where the MFS path and IPNS key come
// from the flags.
func runPush(c *ucli.Context, store *blockstore.Store, k *push.Kubo, root cid.Cid, opts push.Options) (push.Result, error) {
	opts.ToFiles, opts.Publish = c.String("to-files"), c.String("publish")
	return push.Push(c.Context, store, k, root, opts)
}
