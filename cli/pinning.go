package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	ucli "github.com/urfave/cli/v2"

	"github.com/ipfs-sync/ipfs-sync/cluster"
	"github.com/ipfs-sync/ipfs-sync/pinsvc"
)

// pinningTokenFlag is the flag behind IPFS_SYNC_PINNING_TOKEN and
// config.json's "pinning-token". It is hidden, and refused on the command
// line (pinningToken): there every ps listing would show the token.
const pinningTokenFlag = "pinning-token"

func pinningFlags() []ucli.Flag {
	cat := "Pinning service (IPFS Pinning Service API v1.0.0):"
	return []ucli.Flag{
		&ucli.StringFlag{Name: "pinning-service", Usage: "then have the pinning service at `URL` pin the root as the pin of the name (the name's previous pin removed once it is pinned), fetched from the kubo node of --api (else from the IPFS node of the --cluster peer); with --wait, until it reports the pin pinned or failed; bearer token from $IPFS_SYNC_PINNING_TOKEN or config.json's \"pinning-token\"", Category: cat},
		&ucli.StringFlag{Name: pinningTokenFlag, Hidden: true},
	}
}

// newPinning is the client of --pinning-service, or nil without it; a bad
// URL is a usage error.
func newPinning(c *ucli.Context) (*pinsvc.Client, error) {
	token, err := pinningToken(c)
	if err != nil {
		return nil, err
	}
	url := c.String("pinning-service")
	if url == "" {
		return nil, nil
	}
	if c.Bool("wait") && c.Duration("wait-timeout") <= 0 {
		return nil, usageError{errors.New("--wait-timeout must be positive")}
	}
	svc, err := pinsvc.New(url, token)
	if err != nil {
		return nil, usageError{err}
	}
	return svc, nil
}

// pinningToken is the bearer token from the environment or config.json.
// One given on the command line, where every ps listing shows it, is a
// usage error: the flag is there for config.json's sake. The value is set
// and not the environment's, and config.json did not set it (applyConfig
// marks when it does), so it came from the command line.
func pinningToken(c *ucli.Context) (string, error) {
	token := c.String(pinningTokenFlag)
	fromConfig, _ := c.App.Metadata[pinningTokenFlag].(bool)
	if token != "" && !fromConfig && token != os.Getenv(envVar(pinningTokenFlag)) {
		return "", usageError{fmt.Errorf("the pinning service's token goes in %s or config.json's %q, not on the command line", envVar(pinningTokenFlag), pinningTokenFlag)}
	}
	return token, nil
}

// runPinning hands root to the pinning service under name, with origin
// (the node just fed the blocks) as the place to fetch them from. --wait
// and --wait-timeout are the cluster hand-off's: whether to wait for the
// outcome, and for how long.
func runPinning(c *ucli.Context, svc *pinsvc.Client, root cid.Cid, name string, origin pinsvc.Origin) (pinsvc.Result, error) {
	var wait time.Duration
	if c.Bool("wait") {
		wait = c.Duration("wait-timeout")
	}
	return pinsvc.Ensure(c.Context, svc, root, pinsvc.Options{Name: name, Origin: origin, Wait: wait})
}

// pinningLine is the human summary of a hand-off to a pinning service.
func pinningLine(r pinsvc.Result) string {
	what := map[string]string{pinsvc.SentAdd: "pin requested", pinsvc.SentNone: "pin already requested"}[r.Sent]
	s := fmt.Sprintf("%s at %s as %q (request %s): %s", what, r.Service, r.Name, r.RequestID, r.Status)
	if len(r.Delegates) > 0 {
		s += "; delegates " + strings.Join(r.Delegates, " ")
	}
	return s
}

// clusterOrigin is the IPFS node beside the peer --cluster names, where
// the cluster hand-off put the blocks: the origin of a pinning service's
// fetch when no --api is given.
type clusterOrigin struct{ cl *cluster.Client }

func (o clusterOrigin) Addrs(ctx context.Context) ([]string, error) { return o.cl.IPFSAddrs(ctx) }

// Connect does nothing: the cluster's REST API cannot dial a peer, and
// dialling the delegates is only a head start.
func (clusterOrigin) Connect(context.Context, []string) error { return nil }
