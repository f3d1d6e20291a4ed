package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	ucli "github.com/urfave/cli/v2"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/cluster"
	"github.com/ipfs-sync/ipfs-sync/sync"
)

// clusterAuthFlag is the flag behind IPFS_SYNC_CLUSTER_AUTH. It is hidden:
// credentials on the command line are in every ps listing.
const clusterAuthFlag = "cluster-auth"

// clusterFlags are the flags of a hand-off to an IPFS Cluster, and --wait
// and --wait-timeout, which the pinning service's hand-off shares; wait is
// --wait's default (on for push, off for sync, whose cron run need not
// stay for the replication).
func clusterFlags(wait bool) []ucli.Flag {
	cat := "IPFS Cluster:"
	waitCat := "Waiting for the pin (--cluster, --pinning-service):"
	return []ucli.Flag{
		&ucli.StringFlag{Name: "cluster", Usage: "hand the root to the IPFS Cluster whose REST API is at `URL` (http://[USER:PASSWORD@]HOST:9094, credentials also from $IPFS_SYNC_CLUSTER_AUTH): the blocks it lacks go into one peer, then the pin of the name moves to the root (pin-update)", Category: cat},
		&ucli.IntFlag{Name: "replication-min", Usage: "the cluster pin's minimum replication factor `N` (-1: every peer)", DefaultText: "the cluster's, or the previous pin's", Category: cat},
		&ucli.IntFlag{Name: "replication-max", Usage: "the cluster pin's maximum replication factor `N` (-1: every peer)", DefaultText: "the cluster's, or the previous pin's", Category: cat},
		&ucli.BoolFlag{Name: "keep-previous", Usage: "leave the name's previous root pinned in the cluster", Category: cat},
		&ucli.BoolFlag{Name: "wait", Value: wait, Usage: "wait until the root is PINNED on replication-min peers (every allocated peer without it), a status line per peer; with --pinning-service, until the service reports the pin pinned or failed", Category: waitCat},
		&ucli.DurationFlag{Name: "wait-timeout", Value: 10 * time.Minute, Usage: "give up waiting after `DURATION` (exit 6)", Category: waitCat},
		&ucli.StringFlag{Name: clusterAuthFlag, Hidden: true},
	}
}

// newCluster is the client of --cluster, or nil without it; a bad URL or
// replication factor is a usage error.
func newCluster(c *ucli.Context) (*cluster.Client, error) {
	u := c.String("cluster")
	if u == "" {
		for _, f := range []string{"replication-min", "replication-max", "keep-previous"} {
			if c.IsSet(f) {
				return nil, usageError{fmt.Errorf("--%s needs --cluster", f)}
			}
		}
		return nil, nil
	}
	rmin, rmax := c.Int("replication-min"), c.Int("replication-max")
	switch {
	case rmin < -1 || rmax < -1:
		return nil, usageError{errors.New("--replication-min and --replication-max are -1 (every peer) or more")}
	case rmin != 0 && rmax != 0 && (rmin == -1) != (rmax == -1):
		return nil, usageError{errors.New("--replication-min and --replication-max are both -1 (every peer) or neither")}
	case rmin > 0 && rmax > 0 && rmin > rmax:
		return nil, usageError{fmt.Errorf("--replication-min %d is above --replication-max %d", rmin, rmax)}
	case c.Duration("wait-timeout") <= 0:
		return nil, usageError{errors.New("--wait-timeout must be positive")}
	}
	cl, err := cluster.New(u, c.String(clusterAuthFlag))
	if err != nil {
		return nil, usageError{err}
	}
	return cl, nil
}

// runCluster hands root to the cluster with opts (the name, and a base
// and its remote where the caller has them) and the flags' replication,
// --keep-previous and --wait, printing each peer's status on stderr while
// it waits.
func runCluster(c *ucli.Context, store *blockstore.Store, cl *cluster.Client, root cid.Cid, opts cluster.Options) (cluster.Result, error) {
	opts.ReplicationMin, opts.ReplicationMax = c.Int("replication-min"), c.Int("replication-max")
	opts.KeepPrevious = c.Bool("keep-previous")
	if c.Bool("wait") {
		opts.Wait = c.Duration("wait-timeout")
	}
	if !c.Bool("quiet") {
		opts.Progress = func(p cluster.PeerStatus) {
			line := fmt.Sprintf("cluster: %s %s", p.Name, p.Status)
			if p.Error != "" {
				line += ": " + p.Error
			}
			fmt.Fprintln(c.App.ErrWriter, line)
		}
	}
	return cluster.HandOff(c.Context, store, cl, root, opts)
}

// clusterLine is the human summary of a hand-off to a cluster.
func clusterLine(r cluster.Result) string {
	s := fmt.Sprintf("cluster %s: %d blocks, %s", r.Cluster, r.Blocks, humanBytes(r.Bytes))
	switch r.Pin {
	case cluster.PinUpdated:
		s += "; pin moved from " + *r.Previous
	case cluster.PinAdded:
		s += "; pinned"
	case cluster.PinKept:
		s += "; already pinned"
	}
	s += fmt.Sprintf("; PINNED on %d of %d peers", r.Pinned, r.Want)
	if len(r.Unpinned) > 0 {
		s += "; unpinned " + strings.Join(r.Unpinned, " ")
	}
	return s
}

// syncCluster hands a sync's recorded root to the cluster as the pin of
// the ref's name; with no hand-off recorded here, its delta is against the
// previous root the sync read from the target, as a push's is, or the
// name's pin in the cluster, whose blocks this repository lacks are read
// through --from (a runner that keeps nothing sends only the delta).
func syncCluster(c *ucli.Context, store *blockstore.Store, cl *cluster.Client, sum sync.Summary) (*cluster.Result, error) {
	po, err := syncPushOptions(c, sum)
	if err == nil && po.Remote == nil && c.String("from") != "" {
		po.Remote, err = targetSource(c)
	}
	var res cluster.Result
	if err == nil {
		res, err = runCluster(c, store, cl, cid.MustParse(sum.Root), cluster.Options{Name: sum.Name, Base: po.Base, Remote: po.Remote})
	}
	if err != nil {
		return &res, handOffError{root: sum.Root, to: "the cluster", name: sum.Name, err: err}
	}
	return &res, nil
}
