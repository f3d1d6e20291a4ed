package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	bstore "github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/export"
	"github.com/ipfs-sync/ipfs-sync/remote"
)

// Options say how a root is handed to the cluster.
type Options struct {
	// Name is the ref's name: the pin's name in the cluster, and what the
	// root last handed to this cluster is recorded under here.
	Name string
	// ReplicationMin and ReplicationMax set the pin's replication factors
	// (0: the cluster's defaults for a new pin, the previous pin's for a
	// moved one).
	ReplicationMin, ReplicationMax int
	// KeepPrevious leaves the name's older pins in place.
	KeepPrevious bool
	// Wait is how long to wait for the root to be PINNED on enough peers
	// (0: check once and return).
	Wait time.Duration
	// Base is a root the cluster holds already, for when none is recorded
	// here (a repository that keeps nothing between runs), with Remote to
	// read its blocks this repository lacks; see push.Options.
	Base   cid.Cid
	Remote remote.Source
	// Progress is called with a peer's status each time it changes while
	// waiting.
	Progress func(PeerStatus)
}

// Pin actions in Result.Pin.
const (
	PinAdded   = "added"   // a new pin
	PinUpdated = "updated" // pin-update from Result.Previous
	PinKept    = "kept"    // the cluster had the root pinned already
)

// Result is what one hand-off did.
type Result struct {
	Cluster string `json:"cluster"`
	Root    string `json:"root"`
	// Previous is the pin the delta was computed against and the pin
	// moved from; null for a whole DAG or when nothing was sent.
	Previous *string `json:"previous"`
	Blocks   int64   `json:"blocks_sent"`
	Bytes    int64   `json:"bytes_sent"`
	Pin      string  `json:"pin"`
	// Pinned counts the peers on which the root is PINNED; Want is how
	// many must be (replication-min, or every allocated peer).
	Pinned   int          `json:"pinned"`
	Want     int          `json:"want"`
	Unpinned []string     `json:"unpinned"`
	Peers    []PeerStatus `json:"peers"`
}

// ErrNotPinned means the root was handed to the cluster but the wait ran
// out before it was PINNED on as many peers as it must be. The name's older
// pins are kept until it is; running the hand-off again sends nothing and
// waits anew.
var ErrNotPinned = errors.New("not pinned on enough peers")

// HandOff sends the cluster the blocks of root it lacks and makes root the
// pin of opts.Name.
//
// The delta is against the name's previous root in the cluster: the one
// recorded here as last handed to it, else opts.Base, else the newest pin
// of the name, whichever the cluster still has pinned (with none, the whole
// DAG goes). It goes as one CAR into the IPFS of the peer c talks to,
// unpinned, and the pin then moves from the previous root to root with
// pin-update, so allocated peers keep their allocations and fetch only the
// new blocks from that peer. The wait ends once root is PINNED on enough
// peers; the name's other pins are removed (unless opts.KeepPrevious) once
// it is PINNED on every peer it is allocated to, see unpinOlder.
//
// Each step is idempotent: a root the cluster has pinned is not sent
// again, and the record moves only after the pin. A hand-off killed at any
// point and run again sends at most that one CAR again, and finishes.
func HandOff(ctx context.Context, store *blockstore.Store, c *Client, root cid.Cid, opts Options) (Result, error) {
	res := Result{Cluster: c.URL(), Root: root.String(), Unpinned: []string{}}
	pins, err := c.Pins(ctx)
	if err != nil {
		return res, fmt.Errorf("list the cluster's pins: %w", err)
	}
	byCID := map[string]Pin{}
	for _, p := range pins {
		byCID[p.CID] = p
	}
	pin, kept := byCID[root.String()]
	if kept {
		res.Pin = PinKept
	} else {
		base, remoteBase, err := previous(store, c, root, opts, pins, byCID)
		if err != nil {
			return res, err
		}
		if pin, err = send(ctx, store, c, root, base, remoteBase, opts, &res); err != nil {
			return res, err
		}
	}
	if pin, err = reconcile(ctx, c, root, pin, opts); err != nil {
		return res, err
	}
	if err := store.RecordPush(c.URL(), opts.Name, root); err != nil {
		return res, fmt.Errorf("record the hand-off: %w", err)
	}
	if err := wait(ctx, c, root, pin, opts, &res); err != nil || opts.KeepPrevious {
		return res, err
	}
	return res, unpinOlder(ctx, c, pins, complete(res.Peers), opts, &res)
}

// unpinOlder removes the name's other pins (and the one the pin moved
// from, whatever its name) once root is PINNED on every peer it is
// allocated to. Not before: a peer still in kubo's pin/update from the
// previous root fails it when that root is unpinned under it. While root
// is on its way (a hand-off that does not wait, or one that waited for
// replication-min peers of more), the newest of them that is itself
// complete stays, for peers still fetching the blocks the two share, and
// only the ones before it go: a sync from cron that never waits keeps two
// or three pins of the name, not every root it handed on.
func unpinOlder(ctx context.Context, c *Client, pins []Pin, done bool, opts Options, res *Result) error {
	var older []Pin
	for _, p := range pins {
		if p.CID != res.Root && (p.Name == opts.Name || (res.Previous != nil && p.CID == *res.Previous)) {
			older = append(older, p)
		}
	}
	slices.SortStableFunc(older, func(a, b Pin) int { return b.Timestamp.Compare(a.Timestamp) })
	if !done {
		keep := -1
		for i, p := range older {
			ci, err := cid.Decode(p.CID)
			if err != nil {
				return fmt.Errorf("pin %q of the cluster: %w", p.CID, err)
			}
			st, err := c.Status(ctx, ci)
			if err != nil {
				return fmt.Errorf("status of %s: %w", p.CID, err)
			}
			if complete(st) {
				keep = i
				break
			}
		}
		if keep < 0 {
			return nil
		}
		older = older[keep+1:]
	}
	for _, p := range older {
		if err := c.Unpin(ctx, p.CID); err != nil {
			return fmt.Errorf("unpin the previous root %s: %w", p.CID, err)
		}
		res.Unpinned = append(res.Unpinned, p.CID)
	}
	return nil
}

// complete reports whether a pin is PINNED on every peer it is allocated
// to (the others report it remote), and on one at least.
func complete(st []PeerStatus) bool {
	n := 0
	for _, p := range st {
		switch p.Status {
		case "pinned":
			n++
		case "remote":
		default:
			return false
		}
	}
	return n > 0
}

func countPinned(st []PeerStatus) int {
	n := 0
	for _, p := range st {
		if p.Status == "pinned" {
			n++
		}
	}
	return n
}

// previous is the root to send the delta against and move the pin from:
// the first of the recorded root, opts.Base and the name's pins (newest
// first) that the cluster has pinned. remoteBase says its blocks may be
// read through opts.Remote.
func previous(store *blockstore.Store, c *Client, root cid.Cid, opts Options, pins []Pin, byCID map[string]Pin) (cid.Cid, bool, error) {
	rec, err := store.Pushed(c.URL(), opts.Name)
	if err != nil {
		return cid.Undef, false, err
	}
	if _, ok := byCID[rec.String()]; rec.Defined() && ok {
		return rec, false, nil
	}
	if _, ok := byCID[opts.Base.String()]; opts.Base.Defined() && ok {
		return opts.Base, opts.Remote != nil, nil
	}
	prev, err := Newest(pins, opts.Name, root)
	if err != nil || !prev.Defined() {
		return cid.Undef, false, err
	}
	return prev, opts.Remote != nil, nil
}

// Newest is the root of the newest of pins called name, leaving out the
// pin of skip (cid.Undef: none left out); cid.Undef when there is none.
func Newest(pins []Pin, name string, skip cid.Cid) (cid.Cid, error) {
	named := slices.DeleteFunc(slices.Clone(pins), func(p Pin) bool {
		return p.Name != name || skip.Defined() && p.CID == skip.String()
	})
	if len(named) == 0 {
		return cid.Undef, nil
	}
	newest := slices.MaxFunc(named, func(a, b Pin) int { return a.Timestamp.Compare(b.Timestamp) })
	return cid.Decode(newest.CID)
}

// send streams the blocks of root not under base (all of them without
// one) into the cluster, then pins root: a pin-update from base, or a new
// pin.
func send(ctx context.Context, store *blockstore.Store, c *Client, root, base cid.Cid, remoteBase bool, opts Options, res *Result) (Pin, error) {
	var bs bstore.Blockstore = store.Blockstore()
	if remoteBase {
		bs = remote.New(bs, opts.Remote, nil)
	}
	var st export.Stats
	err := c.Add(ctx, func(w io.Writer) error {
		var err error
		if base.Defined() {
			st, err = export.CARSince(ctx, bs, base, root, w)
		} else {
			st, err = export.CAR(ctx, bs, root, w)
		}
		return err
	})
	res.Blocks, res.Bytes = st.Blocks, st.Bytes
	if err != nil {
		return Pin{}, fmt.Errorf("send %s to the cluster: %w", root, err)
	}
	po := PinOptions{Name: opts.Name}
	if opts.ReplicationMin != 0 || opts.ReplicationMax != 0 {
		// The cluster's defaults are not known here; its own are -1.
		po.ReplicationMin, po.ReplicationMax = factors(-1, -1, opts.ReplicationMin, opts.ReplicationMax)
	}
	res.Pin = PinAdded
	if base.Defined() {
		po.Update = base
		s := base.String()
		res.Previous, res.Pin = &s, PinUpdated
	}
	pin, err := c.Pin(ctx, root, po)
	if err != nil {
		return pin, fmt.Errorf("pin %s in the cluster: %w", root, err)
	}
	return pin, nil
}

// reconcile pins root again when its replication factors are not the ones
// asked for: a pin-update keeps the previous pin's, and a root the cluster
// had pinned keeps its own.
func reconcile(ctx context.Context, c *Client, root cid.Cid, pin Pin, opts Options) (Pin, error) {
	rmin, rmax := factors(pin.ReplicationMin, pin.ReplicationMax, opts.ReplicationMin, opts.ReplicationMax)
	if rmin == pin.ReplicationMin && rmax == pin.ReplicationMax {
		return pin, nil
	}
	p, err := c.Pin(ctx, root, PinOptions{Name: opts.Name, ReplicationMin: rmin, ReplicationMax: rmax})
	if err != nil {
		return p, fmt.Errorf("set the replication factors of %s: %w", root, err)
	}
	return p, nil
}

// factors are the replication factors a pin with curMin and curMax gets
// when asked for rmin and rmax (0: not asked). The cluster takes both -1
// (every peer) or 0 < min <= max, so one asked for alone brings the other
// along: -1 both; a minimum above the current maximum (or every peer)
// becomes the maximum too, and a maximum below the current minimum (or
// every peer) the minimum too.
func factors(curMin, curMax, rmin, rmax int) (int, int) {
	switch {
	case rmin == -1 || rmax == -1:
		return -1, -1
	case rmin == 0 && rmax == 0:
		return curMin, curMax
	case rmax == 0:
		if curMax < rmin {
			return rmin, rmin
		}
		return rmin, curMax
	case rmin == 0:
		if curMin == -1 || curMin > rmax {
			return rmax, rmax
		}
		return curMin, rmax
	}
	return rmin, rmax
}

// pollEvery is how often wait asks the cluster for the root's status.
const pollEvery = 500 * time.Millisecond

// wait polls root's status, into res, until it is PINNED on the peers it
// must be, or opts.Wait runs out (ErrNotPinned); with no wait it asks once.
func wait(ctx context.Context, c *Client, root cid.Cid, pin Pin, opts Options, res *Result) error {
	deadline := time.Now().Add(opts.Wait)
	seen := map[string]string{}
	for {
		st, err := c.Status(ctx, root)
		if err != nil {
			return fmt.Errorf("status of %s: %w", root, err)
		}
		res.Peers, res.Pinned, res.Want = st, countPinned(st), want(pin, opts, st)
		for _, p := range st {
			if opts.Progress != nil && seen[p.Peer] != p.Status+p.Error {
				seen[p.Peer] = p.Status + p.Error
				opts.Progress(p)
			}
		}
		switch {
		case res.Pinned >= res.Want, opts.Wait == 0:
			return nil
		case !time.Now().Before(deadline):
			return fmt.Errorf("%s is PINNED on %d of %d peers (%s): %w", root, res.Pinned, res.Want, summary(st), ErrNotPinned)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

// want is how many peers must have root PINNED: replication-min, else
// every peer it is allocated to (every peer for a pin everywhere).
func want(pin Pin, opts Options, st []PeerStatus) int {
	switch {
	case opts.ReplicationMin > 0:
		return opts.ReplicationMin
	case pin.ReplicationMin > 0:
		return pin.ReplicationMin
	case len(pin.Allocations) > 0:
		return len(pin.Allocations)
	}
	n := 0
	for _, p := range st {
		if p.Status != "remote" {
			n++
		}
	}
	return max(n, 1)
}

// summary is the peers' statuses in one line, for an error.
func summary(st []PeerStatus) string {
	parts := make([]string, len(st))
	for i, p := range st {
		parts[i] = p.Name + " " + p.Status
		if p.Error != "" {
			parts[i] += ": " + p.Error
		}
	}
	return strings.Join(parts, ", ")
}

func sortPeers(st []PeerStatus) {
	slices.SortFunc(st, func(a, b PeerStatus) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Peer, b.Peer)
	})
}
