package cli

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"
	ucli "github.com/urfave/cli/v2"

	"github.com/ipfs-sync/ipfs-sync/cluster"
	"github.com/ipfs-sync/ipfs-sync/pinsvc"
	"github.com/ipfs-sync/ipfs-sync/push"
	"github.com/ipfs-sync/ipfs-sync/remote"
	"github.com/ipfs-sync/ipfs-sync/sync"
)

// fromFlag names the trustless gateway a previous root the repository
// lacks is read from.
func fromFlag(what string) ucli.Flag {
	return &ucli.StringFlag{Name: "from", Usage: "read " + what + " from this trustless gateway `URL` (?format=raw) where the repository lacks it; default: the --api node (block/get)"}
}

// targetSource is where blocks the repository lacks are read: the gateway
// of --from, else the kubo node of --api; nil with neither.
func targetSource(c *ucli.Context) (remote.Source, error) {
	if from := c.String("from"); from != "" {
		g, err := remote.NewGateway(from)
		if err != nil {
			return nil, usageError{err}
		}
		return g, nil
	}
	if c.String("api") == "" {
		return nil, nil
	}
	k, err := newKubo(c)
	if err != nil {
		return nil, err
	}
	return remote.NewKubo(k.URL()), nil
}

// syncTarget is sync's target (nil without --api or --from): a runner
// that keeps nothing between runs diffs against the root it holds under
// the names the hand-offs give it (see previousPlaces).
func syncTarget(c *ucli.Context) (*remote.Target, error) {
	src, err := targetSource(c)
	if src == nil || err != nil {
		return nil, err
	}
	places, err := previousPlaces(c)
	if err != nil {
		return nil, err
	}
	return &remote.Target{Source: src, Previous: firstFound(places)}, nil
}

// place finds the root a hand-off left for the ref called name, or
// cid.Undef.
type place func(ctx context.Context, name string) (cid.Cid, error)

// previousPlaces are where the hand-offs asked for leave the root they
// sent, in the order they are asked: the MFS path of --to-files, the IPNS
// name of --publish's key, the newest pin of the ref's name in the
// cluster of --cluster, the newest pinned pin of that name at
// --pinning-service.
func previousPlaces(c *ucli.Context) ([]place, error) {
	var places []place
	if c.String("api") != "" {
		k, err := newKubo(c)
		if err != nil {
			return nil, err
		}
		rk := remote.NewKubo(k.URL())
		if p := c.String("to-files"); p != "" {
			places = append(places, func(ctx context.Context, _ string) (cid.Cid, error) { return rk.FilesRoot(ctx, p) })
		}
		if key := c.String("publish"); key != "" {
			places = append(places, func(ctx context.Context, _ string) (cid.Cid, error) { return rk.Published(ctx, key) })
		}
	}
	cl, err := newCluster(c)
	if err != nil {
		return nil, err
	}
	if cl != nil {
		places = append(places, clusterPlace(cl))
	}
	svc, err := newPinning(c)
	if err != nil {
		return nil, err
	}
	if svc != nil {
		places = append(places, pinningPlace(svc))
	}
	return places, nil
}

// clusterPlace is the newest pin of the ref's name in the cluster.
func clusterPlace(cl *cluster.Client) place {
	return func(ctx context.Context, name string) (cid.Cid, error) {
		pins, err := cl.Pins(ctx)
		if err != nil {
			return cid.Undef, fmt.Errorf("cluster %s: %w", cl.URL(), err)
		}
		return cluster.Newest(pins, name, cid.Undef)
	}
}

// pinningPlace is the newest pin of the ref's name that the pinning
// service reports pinned.
func pinningPlace(svc *pinsvc.Client) place {
	return func(ctx context.Context, name string) (cid.Cid, error) {
		r, err := pinsvc.Newest(ctx, svc, name)
		if err != nil {
			return cid.Undef, fmt.Errorf("pinning service %s: %w", svc.URL(), err)
		}
		return r, nil
	}
}

// firstFound asks each place in turn: the first that holds a root wins.
func firstFound(places []place) func(context.Context, string) (cid.Cid, error) {
	return func(ctx context.Context, name string) (cid.Cid, error) {
		for _, find := range places {
			if r, err := find(ctx, name); err != nil || r.Defined() {
				return r, err
			}
		}
		return cid.Undef, nil
	}
}

// syncPushOptions are the push of a sync's root: with no push recorded
// here, its delta is against the previous root the sync read from the
// target.
func syncPushOptions(c *ucli.Context, sum sync.Summary) (push.Options, error) {
	opts := push.Options{Name: sum.Name}
	if sum.PreviousFrom == "" || sum.Previous == nil {
		return opts, nil
	}
	base, err := cid.Decode(*sum.Previous)
	if err != nil {
		return opts, err
	}
	src, err := targetSource(c)
	opts.Base, opts.Remote = base, src
	return opts, err
}
