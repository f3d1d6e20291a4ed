package pinsvc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
)

// ErrFailed is a pin the service reports as failed.
var ErrFailed = errors.New("the pinning service reports the pin as failed")

// ErrTimeout is a pin still queued or pinning when the wait ran out.
var ErrTimeout = errors.New("the pinning service has not finished the pin")

// Origin is the node that holds the root's blocks, for the service to
// fetch them from.
type Origin interface {
	// Addrs are the node's swarm multiaddrs, each ending in /p2p/PEERID.
	Addrs(ctx context.Context) ([]string, error)
	// Connect dials the delegates the service named, as the spec asks of
	// a client that holds the data, so that the transfer need not wait
	// for peer routing. Best effort: a failed dial fails nothing.
	Connect(ctx context.Context, addrs []string) error
}

// Options say how to hand a root to the service.
type Options struct {
	// Name is the pin's name: the service keeps one pin of it, replaced
	// by each new root.
	Name string
	// Origin holds the blocks; nil leaves the service to find them.
	Origin Origin
	// Wait is how long to wait for pinned or failed; 0 returns once the
	// service has the request.
	Wait time.Duration
	// Poll is the first interval between status checks (default 250ms);
	// it doubles up to 5s.
	Poll time.Duration
}

// Result is what a hand-off did and where the pin stands.
type Result struct {
	Service   string   `json:"service"`
	Name      string   `json:"name"`
	Root      string   `json:"root"`
	RequestID string   `json:"requestid"`
	Status    Status   `json:"status"`
	Delegates []string `json:"delegates"`
	Origins   []string `json:"origins"`
	// Sent is the request that changed the pin: add, replace or none
	// (the pin of the name was on the root already).
	Sent string `json:"sent"`
	// Replaced is the root of the pin of the name that this one replaced.
	Replaced *string `json:"replaced"`
	// Removed are the request ids of other pins of the name, deleted.
	Removed []string `json:"removed,omitempty"`
	// Readded says the pin failed, a replace or one found on its way,
	// and root was then asked for as a new pin (see Ensure).
	Readded bool `json:"readded,omitempty"`
	// Details is the service's info.status_details, if it gave any.
	Details string `json:"details,omitempty"`
}

// What Result.Sent says.
const (
	SentAdd     = "add"
	SentReplace = "replace"
	SentNone    = "none"
)

// Ensure leaves one pin named opts.Name at the service, on root, and waits
// up to opts.Wait for the service to pin it. The pins of the name are
// looked up at the service each time, so a hand-off killed at any point is
// simply run again, and one run again after it finished sends nothing:
//   - a pin of the name on root is kept, unless it failed: then root is
//     requested anew, so that a rerun retries it;
//   - else the newest pin of the name is replaced (POST /pins/{requestid})
//     or, when there is none, root is added;
//   - any other pin of the name is deleted.
//
// A pin that fails while Ensure waits, unless this run added it, is
// added once more (see readd). A failed pin returns ErrFailed, one not
// finished in time ErrTimeout, both with the Result.
func Ensure(ctx context.Context, c *Client, root cid.Cid, opts Options) (Result, error) {
	res := Result{Service: c.URL(), Name: opts.Name, Root: root.String(), Sent: SentNone, Delegates: []string{}, Origins: []string{}}
	if len(opts.Name) > MaxNameLen {
		return res, fmt.Errorf("pin name %q is longer than the %d bytes the Pinning Service API allows", opts.Name, MaxNameLen)
	}
	have, err := c.List(ctx, ListOptions{Name: opts.Name, Status: AllStatuses, Limit: 1000})
	if err != nil {
		return res, fmt.Errorf("look up the pins named %q: %w", opts.Name, err)
	}
	// Another's pin that merely has a longer name is no pin of ours, if a
	// service matched loosely.
	pins := slices.DeleteFunc(have.Results, func(p PinStatus) bool { return p.Pin.Name != opts.Name })
	// Newest first: that one is replaced, the rest are removed.
	slices.SortStableFunc(pins, func(a, b PinStatus) int { return b.Created.Compare(a.Created) })
	var target *PinStatus
	var rest []PinStatus
	for i := range pins {
		if target == nil && sameCID(pins[i].Pin.CID, root) && pins[i].Status != Failed {
			target = &pins[i]
		} else {
			rest = append(rest, pins[i])
		}
	}
	var posted time.Time
	if target != nil {
		record(&res, *target)
		if target.Pin.Origins != nil {
			res.Origins = target.Pin.Origins
		}
	} else {
		if rest, err = pinRoot(ctx, c, root, opts, &res, rest); err != nil {
			return res, err
		}
		posted = time.Now()
	}
	for _, p := range rest {
		if p.RequestID == res.RequestID {
			continue // a service whose request ids are CIDs lists a pin once
		}
		if err := c.Delete(ctx, p.RequestID); err != nil && !isNotFound(err) {
			return res, fmt.Errorf("remove the older pin %s (%s) named %q: %w", p.RequestID, p.Pin.CID, opts.Name, err)
		}
		res.Removed = append(res.Removed, p.RequestID)
	}
	if res.Status == Pinned || res.Status == Failed {
		return res, outcome(res)
	}
	if opts.Origin != nil && len(res.Delegates) > 0 {
		_ = opts.Origin.Connect(ctx, res.Delegates)
	}
	if opts.Wait <= 0 {
		return res, nil
	}
	deadline := time.Now().Add(opts.Wait)
	if err := wait(ctx, c, &res, deadline, opts, posted); err != nil {
		return res, err
	}
	if res.Status == Failed && res.Sent != SentAdd {
		// IPFS Cluster (v1.1.6) unpins the replaced root while its peers
		// run kubo's pin/update to the new one, and kubo fails the update
		// on every peer that still had blocks to fetch ("datastore: key
		// not found"): a replace that failed, this run's or one found on
		// its way (a killed run's), is asked once more as a new pin,
		// which fetches whatever is missing.
		if err := readd(ctx, c, root, &res); err != nil {
			return res, err
		}
		if err := wait(ctx, c, &res, deadline, opts, time.Now()); err != nil {
			return res, err
		}
	}
	return res, outcome(res)
}

// readd adds root anew, with the same origins, then deletes the failed
// pin unless the service answered with its request id (IPFS Cluster's are
// CIDs: the new request is the old pin asked for again, and a delete
// first could be carried out after it).
func readd(ctx context.Context, c *Client, root cid.Cid, res *Result) error {
	failed := res.RequestID
	st, err := c.Add(ctx, Pin{CID: root.String(), Name: res.Name, Origins: res.Origins})
	if err != nil {
		return fmt.Errorf("pin %s named %q anew after it failed: %w", root, res.Name, err)
	}
	res.Readded = true
	if res.Sent == SentNone {
		res.Sent = SentAdd
	}
	record(res, st)
	if failed == res.RequestID {
		return nil
	}
	if err := c.Delete(ctx, failed); err != nil && !isNotFound(err) {
		return fmt.Errorf("remove the failed pin %s of %s: %w", failed, root, err)
	}
	res.Removed = append(res.Removed, failed)
	return nil
}

// pinRoot asks for root under the name: in place of the newest pin of
// another root named so when there is one, else as a new pin; it returns
// the pins of the name still to remove. Pins of root that failed are
// among those, removed only once the new request is in (they are not
// replaced: replacing a pin by the same CID is a no-op at best, and at
// IPFS Cluster, whose request ids are CIDs, it unpins it; nor deleted
// first: the cluster may then run the unpin after the new pin).
func pinRoot(ctx context.Context, c *Client, root cid.Cid, opts Options, res *Result, pins []PinStatus) ([]PinStatus, error) {
	p := Pin{CID: root.String(), Name: opts.Name}
	if opts.Origin != nil {
		addrs, err := opts.Origin.Addrs(ctx)
		if err != nil {
			return pins, fmt.Errorf("the origin's addresses, for the pinning service to fetch %s from: %w", root, err)
		}
		p.Origins = origins(addrs)
		res.Origins = p.Origins
	}
	i := slices.IndexFunc(pins, func(old PinStatus) bool { return !sameCID(old.Pin.CID, root) })
	if i < 0 {
		st, err := c.Add(ctx, p)
		if err != nil {
			return pins, fmt.Errorf("pin %s named %q: %w", root, opts.Name, err)
		}
		res.Sent = SentAdd
		record(res, st)
		return pins, nil
	}
	old := pins[i] // the newest of another root
	st, err := c.Replace(ctx, old.RequestID, p)
	if err != nil {
		return pins, fmt.Errorf("replace the pin %s (%s) named %q by %s: %w", old.RequestID, old.Pin.CID, opts.Name, root, err)
	}
	res.Sent, res.Replaced = SentReplace, &old.Pin.CID
	record(res, st)
	return slices.Delete(slices.Clone(pins), i, i+1), nil
}

// settle is how long after a post the service's answers may still be of
// the state before it: a pin it does not know yet (a service may list
// what it stores later), or the failure of the request the post asked
// anew (IPFS Cluster's peers report their last attempt until the new pin
// reaches them).
const settle = 10 * time.Second

// wait polls the pin until it is pinned or failed, or the deadline.
func wait(ctx context.Context, c *Client, res *Result, deadline time.Time, opts Options, posted time.Time) error {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	interval := opts.Poll
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("pin %s of %s is still %s after %s (run again to keep waiting): %w", res.RequestID, res.Root, res.Status, opts.Wait, ErrTimeout)
			}
			return ctx.Err()
		case <-time.After(interval):
		}
		interval = min(2*interval, 5*time.Second)
		st, err := c.Get(ctx, res.RequestID)
		switch {
		case err == nil:
			record(res, st)
			if res.Status == Pinned || (res.Status == Failed && !settling(posted)) {
				return nil
			}
		case isNotFound(err) && settling(posted):
		case ctx.Err() != nil:
			// the deadline, reported above
		default:
			return fmt.Errorf("status of the pin %s of %s: %w", res.RequestID, res.Root, err)
		}
	}
}

func settling(posted time.Time) bool {
	return !posted.IsZero() && time.Since(posted) < settle
}

func record(res *Result, st PinStatus) {
	res.RequestID, res.Status = st.RequestID, st.Status
	if st.Delegates != nil {
		res.Delegates = st.Delegates
	}
	res.Details = st.Info["status_details"]
}

// outcome is the error of a finished pin: ErrFailed for failed.
func outcome(res Result) error {
	if res.Status != Failed {
		return nil
	}
	why := ""
	if res.Details != "" {
		why = " (" + res.Details + ")"
	}
	return fmt.Errorf("pin %s of %s named %q at %s%s: %w", res.RequestID, res.Root, res.Name, res.Service, why, ErrFailed)
}

// origins keeps the addresses a remote peer can dial (those that end in
// the node's /p2p/ID, as the spec requires), at most MaxOrigins.
func origins(addrs []string) []string {
	out := []string{}
	for _, a := range addrs {
		if strings.Contains(a, "/p2p/") && !strings.Contains(a, "/p2p-circuit") && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out[:min(len(out), MaxOrigins)]
}

// sameCID says whether a CID the service gave names root: the same codec
// and multihash, whatever the version or base it is written in.
func sameCID(s string, root cid.Cid) bool {
	c, err := cid.Decode(s)
	if err != nil {
		return s == root.String()
	}
	return c.Type() == root.Type() && bytes.Equal(c.Hash(), root.Hash())
}

func isNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.NotFound()
}
