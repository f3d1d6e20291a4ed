package cli

import (
	"context"

	"github.com/ipfs/go-cid"
	ucli "github.com/urfave/cli/v2"

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
// the names the hand-off gives it (see previousOnTarget).
func syncTarget(c *ucli.Context) (*remote.Target, error) {
	src, err := targetSource(c)
	if src == nil || err != nil {
		return nil, err
	}
	t := &remote.Target{Source: src}
	if c.String("api") != "" {
		k, err := newKubo(c)
		if err != nil {
			return nil, err
		}
		t.Previous = previousOnTarget(c, remote.NewKubo(k.URL()))
	}
	return t, nil
}

// previousOnTarget finds the root the target holds under this sync's
// names, asking each place in turn: the MFS path of --to-files, then the
// IPNS name of --publish's key. The first that holds a root wins. Each
// hand-off that names what it sent has its place here.
func previousOnTarget(c *ucli.Context, k *remote.Kubo) func(context.Context) (cid.Cid, error) {
	var places []func(context.Context) (cid.Cid, error)
	if p := c.String("to-files"); p != "" {
		places = append(places, func(ctx context.Context) (cid.Cid, error) { return k.FilesRoot(ctx, p) })
	}
	if key := c.String("publish"); key != "" {
		places = append(places, func(ctx context.Context) (cid.Cid, error) { return k.Published(ctx, key) })
	}
	return func(ctx context.Context) (cid.Cid, error) {
		for _, find := range places {
			if r, err := find(ctx); err != nil || r.Defined() {
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
