// Package cluster owns handing roots to an IPFS Cluster through its REST
// API: the blocks the cluster lacks go as one CAR into one peer's IPFS
// (POST /add?format=car, not pinned there), then the pin of the ref's name
// moves to the new root with the cluster's pin-update, so that allocated
// peers keep their allocations and fetch only the new blocks; once the new
// root is PINNED on enough peers the name's older pins are removed.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/internal/httpapi"
)

// Client talks to one cluster peer's REST API.
type Client struct {
	base       string // scheme://host[:port][/path], no credentials
	user, pass string
	auth       bool
	http       *http.Client
}

// New is a client of the REST API at rawURL (http(s)://[USER:PASS@]HOST:PORT
// or a multiaddr /ip4/HOST/tcp/PORT). Credentials in the URL win over auth,
// "USER:PASSWORD" (IPFS_SYNC_CLUSTER_AUTH), which keeps them out of ps.
func New(rawURL, auth string) (*Client, error) {
	c := &Client{http: &http.Client{Transport: &http.Transport{
		Proxy:       http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		// POST /add answers only once the whole CAR is in.
		ResponseHeaderTimeout: 0,
	}}}
	base, user, err := httpapi.Endpoint("cluster", rawURL)
	if err != nil {
		return nil, err
	}
	c.base = base
	if user != nil {
		c.user = user.Username()
		c.pass, _ = user.Password()
		c.auth = true
	}
	if !c.auth && auth != "" {
		var ok bool
		if c.user, c.pass, ok = strings.Cut(auth, ":"); !ok {
			return nil, errors.New("cluster credentials: want USER:PASSWORD")
		}
		c.auth = true
	}
	return c, nil
}

// URL is the REST API's address without credentials; what was handed to
// the cluster is recorded under it.
func (c *Client) URL() string { return c.base }

// Error is an error the cluster answered with.
type Error struct {
	Endpoint string
	Code     int
	Message  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("cluster %s: %d %s", e.Endpoint, e.Code, e.Message)
}

// NotFound reports whether err is the cluster's 404: no such pin.
func NotFound(err error) bool {
	var ce *Error
	return errors.As(err, &ce) && ce.Code == http.StatusNotFound
}

// do sends one request and decodes its answer, a JSON value or a stream
// of them, with each value passed to each (nil: the answer is dropped).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader, contentType string, each func(*json.Decoder) error) error {
	endpoint := c.base + path
	u := endpoint
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("cluster %s: %w", endpoint, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.auth {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cluster %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var ae struct{ Message string }
		if json.Unmarshal(data, &ae) != nil || ae.Message == "" {
			ae.Message = strings.TrimSpace(string(data))
		}
		return &Error{Endpoint: method + " " + endpoint, Code: resp.StatusCode, Message: ae.Message}
	}
	dec := json.NewDecoder(resp.Body)
	for each != nil {
		if err := each(dec); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("cluster %s: %w", endpoint, err)
		}
	}
	if each == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	// Streamed answers carry a late error as a trailer.
	if tr := resp.Trailer.Get("X-Stream-Error"); tr != "" {
		return &Error{Endpoint: method + " " + endpoint, Code: resp.StatusCode, Message: tr}
	}
	if err != nil {
		return fmt.Errorf("cluster %s: %w", endpoint, err)
	}
	return nil
}

// Add streams a CAR (written by writeCAR) into the IPFS of the peer this
// client talks to, without pinning it (format=car, local, no-pin): the
// blocks may be a delta, not a whole DAG, and the pin moves afterwards.
func (c *Client) Add(ctx context.Context, writeCAR func(io.Writer) error) error {
	body, contentType := httpapi.CARForm(writeCAR)
	q := url.Values{"format": {"car"}, "local": {"true"}, "no-pin": {"true"}, "stream-channels": {"true"}}
	err := c.do(ctx, http.MethodPost, "/add", q, body, contentType, func(d *json.Decoder) error {
		var out struct{ Error string }
		if err := d.Decode(&out); err != nil {
			return err
		}
		if out.Error != "" {
			return errors.New(out.Error)
		}
		return nil
	})
	body.CloseWithError(errors.New("add finished"))
	return err
}

// Pin is a pin in the cluster's shared state.
type Pin struct {
	CID            string    `json:"cid"`
	Name           string    `json:"name"`
	Allocations    []string  `json:"allocations"`
	ReplicationMin int       `json:"replication_factor_min"`
	ReplicationMax int       `json:"replication_factor_max"`
	Type           string    `json:"type"`
	Timestamp      time.Time `json:"timestamp"`
}

// dataPin is the type of a pin of a whole DAG (api.DataType), as the
// REST API spells it.
const dataPin = "pin"

// Pins lists the DAG pins in the cluster's state.
func (c *Client) Pins(ctx context.Context) ([]Pin, error) {
	var pins []Pin
	err := c.do(ctx, http.MethodGet, "/allocations", url.Values{"filter": {"pin"}}, nil, "", func(d *json.Decoder) error {
		var p Pin
		if err := d.Decode(&p); err != nil {
			return err
		}
		if p.Type == dataPin {
			pins = append(pins, p)
		}
		return nil
	})
	return pins, err
}

// PinOptions are what a pin request sets; zero replication factors leave
// the cluster's defaults (or, on a pin-update, the previous pin's).
type PinOptions struct {
	Name           string
	ReplicationMin int
	ReplicationMax int
	// Update is the pin whose allocations the new one takes over.
	Update cid.Cid
}

// Pin pins root (POST /pins/ROOT), moving from opts.Update with the
// cluster's pin-update when it is defined, and returns the pin.
func (c *Client) Pin(ctx context.Context, root cid.Cid, opts PinOptions) (Pin, error) {
	q := url.Values{}
	if opts.Name != "" {
		q.Set("name", opts.Name)
	}
	if opts.ReplicationMin != 0 {
		q.Set("replication-min", strconv.Itoa(opts.ReplicationMin))
	}
	if opts.ReplicationMax != 0 {
		q.Set("replication-max", strconv.Itoa(opts.ReplicationMax))
	}
	if opts.Update.Defined() {
		q.Set("pin-update", opts.Update.String())
	}
	var p Pin
	err := c.do(ctx, http.MethodPost, "/pins/"+root.String(), q, nil, "", func(d *json.Decoder) error { return d.Decode(&p) })
	return p, err
}

// Unpin removes root from the cluster's state; a root that is not pinned
// is no error.
func (c *Client) Unpin(ctx context.Context, root string) error {
	err := c.do(ctx, http.MethodDelete, "/pins/"+root, nil, nil, "", nil)
	if NotFound(err) {
		return nil
	}
	return err
}

// PeerStatus is a pin's state on one cluster peer.
type PeerStatus struct {
	Peer   string `json:"peer"`
	Name   string `json:"peername"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Status asks every peer for root's state (GET /pins/ROOT), in peer-name
// order.
func (c *Client) Status(ctx context.Context, root cid.Cid) ([]PeerStatus, error) {
	var gpi struct {
		PeerMap map[string]struct {
			Name   string `json:"peername"`
			Status string `json:"status"`
			Error  string `json:"error"`
		} `json:"peer_map"`
	}
	if err := c.do(ctx, http.MethodGet, "/pins/"+root.String(), nil, nil, "", func(d *json.Decoder) error { return d.Decode(&gpi) }); err != nil {
		return nil, err
	}
	st := make([]PeerStatus, 0, len(gpi.PeerMap))
	for id, pi := range gpi.PeerMap {
		st = append(st, PeerStatus{Peer: id, Name: pi.Name, Status: pi.Status, Error: pi.Error})
	}
	sortPeers(st)
	return st, nil
}

// IPFSAddrs are the swarm addresses of the IPFS node beside the peer this
// client talks to (GET /id), each ending in /p2p/PEERID: where a pinning
// service can fetch what Add put there.
func (c *Client) IPFSAddrs(ctx context.Context) ([]string, error) {
	var id struct {
		IPFS struct {
			ID        string   `json:"id"`
			Addresses []string `json:"addresses"`
			Error     string   `json:"error"`
		} `json:"ipfs"`
	}
	if err := c.do(ctx, http.MethodGet, "/id", nil, nil, "", func(d *json.Decoder) error { return d.Decode(&id) }); err != nil {
		return nil, err
	}
	if id.IPFS.Error != "" {
		return nil, fmt.Errorf("cluster %s/id: its IPFS node: %s", c.base, id.IPFS.Error)
	}
	addrs := make([]string, len(id.IPFS.Addresses))
	for i, a := range id.IPFS.Addresses {
		if !strings.Contains(a, "/p2p/") && id.IPFS.ID != "" {
			a += "/p2p/" + id.IPFS.ID
		}
		addrs[i] = a
	}
	return addrs, nil
}
