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
	// Sent is the request that changed the pin: add, or none (a pin of
	// the root, not failed, was there already).
	Sent string `json:"sent"`
	// Replaced is the root of the name's newest pinned pin of another
	// root, the one this pin takes the place of: removed once this one is
	// pinned, kept until then.
	Replaced *string `json:"replaced"`
	// Removed are the request ids of other pins of the name, deleted.
	Removed []string `json:"removed,omitempty"`
	// Details is the service's info.status_details, if it gave any.
	Details string `json:"details,omitempty"`
}

// What Result.Sent says.
const (
	SentAdd  = "add"
	SentNone = "none"
)

// Ensure leaves one pin named opts.Name at the service, on root, and waits
// up to opts.Wait for the service to pin it. The pins of the name are
// looked up at the service each time, so a hand-off killed at any point is
// simply run again, and one run again after it finished sends nothing:
//   - a pin of the name on root is kept, unless it failed: then root is
//     requested anew, so that a rerun retries it;
//   - else root is added (POST /pins);
//   - the name's other pins are deleted, except its newest pinned one
//     while root is not pinned yet.
//
// The spec's replace (POST /pins/{requestid}) is not used: it is a remove
// and an add in one step, and adding first and removing the old pin only
// once the new one is pinned keeps the blocks the two share pinned as
// well, and leaves the name its previous root when the new pin fails or is
// still on its way (exit 6 then, as the cluster hand-off's). It also keeps
// clear of IPFS Cluster's replace (v1.1.6), which unpins the old root at
// once while its peers run kubo's pin/update from it, an update that then
// fails ("datastore: key not found") on every peer that had blocks to
// fetch.
//
// A failed pin returns ErrFailed, one not finished in time ErrTimeout,
// both with the Result.
func Ensure(ctx context.Context, c *Client, root cid.Cid, opts Options) (Result, error) {
	res := Result{Service: c.URL(), Name: opts.Name, Root: root.String(), Sent: SentNone, Delegates: []string{}, Origins: []string{}}
	if len(opts.Name) > MaxNameLen {
		return res, fmt.Errorf("pin name %q is longer than the %d bytes the Pinning Service API allows", opts.Name, MaxNameLen)
	}
	// Newest first: the newest pinned one of another root is the one
	// kept until root is pinned.
	pins, err := named(ctx, c, opts.Name, AllStatuses)
	if err != nil {
		return res, fmt.Errorf("look up the pins named %q: %w", opts.Name, err)
	}
	var target *PinStatus
	var rest []PinStatus
	for i := range pins {
		if target == nil && sameCID(pins[i].Pin.CID, root) && pins[i].Status != Failed {
			target = &pins[i]
		} else {
			rest = append(rest, pins[i])
		}
	}
	prev := slices.IndexFunc(rest, func(p PinStatus) bool { return p.Status == Pinned && !sameCID(p.Pin.CID, root) })
	if prev >= 0 {
		res.Replaced = &rest[prev].Pin.CID
	}
	// anew: the service answered the add with the request id of a failed
	// pin of root, which a service whose request ids are CIDs (IPFS
	// Cluster) does. Its status then stays that failure until the service
	// takes the new request up (a cluster peer reports its last attempt
	// until the new pin reaches it): a failure counts only once the pin
	// has been seen not failed.
	anew := false
	if target != nil {
		record(&res, *target)
		if target.Pin.Origins != nil {
			res.Origins = target.Pin.Origins
		}
	} else {
		if err := addRoot(ctx, c, root, opts, &res); err != nil {
			return res, err
		}
		anew = slices.ContainsFunc(rest, func(p PinStatus) bool { return p.RequestID == res.RequestID })
	}
	if opts.Origin != nil && len(res.Delegates) > 0 && res.Status != Pinned && res.Status != Failed {
		_ = opts.Origin.Connect(ctx, res.Delegates)
	}
	var waitErr error
	if opts.Wait > 0 && (res.Status != Pinned && (res.Status != Failed || anew)) {
		waitErr = wait(ctx, c, &res, time.Now().Add(opts.Wait), opts, anew)
	}
	if waitErr != nil && ctx.Err() != nil {
		return res, waitErr
	}
	if err := removeOthers(ctx, c, &res, rest, prev); err != nil {
		return res, err
	}
	if waitErr != nil {
		return res, waitErr
	}
	return res, outcome(res)
}

// Newest is the root of the newest pinned pin called name, or cid.Undef:
// the root a hand-off left for the name.
func Newest(ctx context.Context, c *Client, name string) (cid.Cid, error) {
	pins, err := named(ctx, c, name, []Status{Pinned})
	if err != nil || len(pins) == 0 {
		return cid.Undef, err
	}
	return cid.Decode(pins[0].Pin.CID)
}

// named are the pins called name in the given statuses, newest first.
func named(ctx context.Context, c *Client, name string, status []Status) ([]PinStatus, error) {
	have, err := c.List(ctx, ListOptions{Name: name, Status: status, Limit: 1000})
	if err != nil {
		return nil, err
	}
	// Another's pin that merely has a longer name is no pin of ours, if a
	// service matched loosely.
	pins := slices.DeleteFunc(have.Results, func(p PinStatus) bool { return p.Pin.Name != name })
	slices.SortStableFunc(pins, func(a, b PinStatus) int { return b.Created.Compare(a.Created) })
	return pins, nil
}

// addRoot asks for root under the name, with the origin's addresses.
func addRoot(ctx context.Context, c *Client, root cid.Cid, opts Options, res *Result) error {
	p := Pin{CID: root.String(), Name: opts.Name}
	if opts.Origin != nil {
		addrs, err := opts.Origin.Addrs(ctx)
		if err != nil {
			return fmt.Errorf("the origin's addresses, for the pinning service to fetch %s from: %w", root, err)
		}
		p.Origins = origins(addrs)
		res.Origins = p.Origins
	}
	st, err := c.Add(ctx, p)
	if err != nil {
		return fmt.Errorf("pin %s named %q: %w", root, opts.Name, err)
	}
	res.Sent = SentAdd
	record(res, st)
	return nil
}

// removeOthers deletes the name's pins other than the one of root: all of
// them once root is pinned, else all but rest[prev], the previous root's
// (prev < 0: none). A pin with the request id of root's (a failed pin of
// root asked anew at a service whose request ids are CIDs) is root's own:
// deleting it would delete the new request.
func removeOthers(ctx context.Context, c *Client, res *Result, rest []PinStatus, prev int) error {
	for i, p := range rest {
		if p.RequestID == res.RequestID || (i == prev && res.Status != Pinned) {
			continue
		}
		if err := c.Delete(ctx, p.RequestID); err != nil && !isNotFound(err) {
			return fmt.Errorf("remove the pin %s (%s) named %q: %w", p.RequestID, p.Pin.CID, res.Name, err)
		}
		res.Removed = append(res.Removed, p.RequestID)
	}
	return nil
}

// maxPoll bounds the interval between status checks: a request asked
// anew must be seen taken up (not failed) before it fails again, which
// takes a cluster peer its pin timeout of no progress at least.
const maxPoll = 2 * time.Second

// wait polls the pin until it is pinned or failed, or the deadline; with
// anew, a failure counts only after the pin was seen not failed.
func wait(ctx context.Context, c *Client, res *Result, deadline time.Time, opts Options, anew bool) error {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	interval := opts.Poll
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	takenUp := !anew
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("pin %s of %s is still %s after %s (run again to keep waiting): %w", res.RequestID, res.Root, res.Status, opts.Wait, ErrTimeout)
			}
			return ctx.Err()
		case <-time.After(interval):
		}
		interval = min(2*interval, maxPoll)
		st, err := c.Get(ctx, res.RequestID)
		switch {
		case err == nil:
			record(res, st)
			if res.Status != Failed {
				takenUp = true
			}
			if res.Status == Pinned || (res.Status == Failed && takenUp) {
				return nil
			}
		case ctx.Err() != nil:
			// the deadline, reported above
		default:
			return fmt.Errorf("status of the pin %s of %s: %w", res.RequestID, res.Root, err)
		}
	}
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
