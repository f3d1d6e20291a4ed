// Package pinsvc owns handing roots to a remote pinning service through
// the IPFS Pinning Service API v1.0.0: the JSON types of the spec, a
// client of the endpoints it uses (list, add, get, delete), and Ensure,
// which leaves one pin of a name, on the given root, at the service and
// waits for the service to say pinned or failed.
//
// The service fetches the blocks itself, over libp2p, from the origins a
// pin request names: the kubo node (or cluster peer) that was just fed the
// root. Nothing here moves blocks.
package pinsvc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Status is the state of a pin object at the service.
type Status string

// The statuses of the spec.
const (
	Queued  Status = "queued"
	Pinning Status = "pinning"
	Pinned  Status = "pinned"
	Failed  Status = "failed"
)

// AllStatuses is every status, for listing: the spec's default is pinned
// only, which would hide a pin still on its way or one that failed.
var AllStatuses = []Status{Queued, Pinning, Pinned, Failed}

// Pin is the spec's Pin object: what to pin recursively.
type Pin struct {
	CID     string            `json:"cid"`
	Name    string            `json:"name,omitempty"`
	Origins []string          `json:"origins,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
}

// PinStatus is the spec's PinStatus object: a pin request and where it is.
type PinStatus struct {
	RequestID string            `json:"requestid"`
	Status    Status            `json:"status"`
	Created   time.Time         `json:"created"`
	Pin       Pin               `json:"pin"`
	Delegates []string          `json:"delegates"`
	Info      map[string]string `json:"info,omitempty"`
}

// PinResults is the spec's answer to a listing.
type PinResults struct {
	Count   int         `json:"count"`
	Results []PinStatus `json:"results"`
}

// failure is the spec's Failure object, the body of an error answer.
type failure struct {
	Error struct {
		Reason  string `json:"reason"`
		Details string `json:"details"`
	} `json:"error"`
}

// MaxNameLen is the longest pin name the spec allows.
const MaxNameLen = 255

// MaxOrigins is the most origins a pin may name.
const MaxOrigins = 20

// Client is a client of one pinning service endpoint.
type Client struct {
	base   string // the endpoint, without a trailing slash
	token  string // sent as a bearer token; never part of an error or a URL
	client *http.Client
}

// New is a client of the service at endpoint (an http or https URL; the
// spec's paths, /pins..., are below it). The token may be empty for a
// service that asks for none.
func New(endpoint, token string) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("pinning service %q: want http(s)://HOST[:PORT][/PATH]", endpoint)
	}
	if u.User != nil {
		return nil, fmt.Errorf("pinning service %q: credentials go in the bearer token (IPFS_SYNC_PINNING_TOKEN), not the URL", u.Redacted())
	}
	return &Client{
		base:  strings.TrimRight(u.String(), "/"),
		token: token,
		client: &http.Client{
			Timeout:   2 * time.Minute, // one request; waiting for a pin is a loop of them
			Transport: &http.Transport{DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext},
		},
	}, nil
}

// URL is the endpoint, normalised.
func (c *Client) URL() string { return c.base }

// Error is an error answered by the service, or the failure to reach it.
type Error struct {
	Method string
	URL    string
	Code   int // HTTP status; 0 when no answer came
	Reason string
	// Details is the service's longer explanation, if any.
	Details string
}

func (e *Error) Error() string {
	msg := e.Reason
	if e.Details != "" {
		msg += ": " + e.Details
	}
	if e.Code != 0 {
		return fmt.Sprintf("pinning service %s %s: %d %s", e.Method, e.URL, e.Code, msg)
	}
	return fmt.Sprintf("pinning service %s %s: %s", e.Method, e.URL, msg)
}

// NotFound is a 404 answer: no such pin object.
func (e *Error) NotFound() bool { return e.Code == http.StatusNotFound }

func (c *Client) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	endpoint := c.base + path
	if len(query) > 0 {
		endpoint += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint, body)
	if err != nil {
		return &Error{Method: method, URL: endpoint, Reason: err.Error()}
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// net/http's error quotes the URL, never the header.
		return &Error{Method: method, URL: endpoint, Reason: err.Error()}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return &Error{Method: method, URL: endpoint, Code: resp.StatusCode, Reason: "reading the answer: " + err.Error()}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &Error{Method: method, URL: endpoint, Code: resp.StatusCode}
		var f failure
		if json.Unmarshal(data, &f) == nil && f.Error.Reason != "" {
			e.Reason, e.Details = f.Error.Reason, f.Error.Details
		} else {
			e.Reason = http.StatusText(resp.StatusCode)
			if s := strings.TrimSpace(string(data)); s != "" {
				e.Details = truncate(s, 512)
			}
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &Error{Method: method, URL: endpoint, Code: resp.StatusCode, Reason: fmt.Sprintf("unexpected answer %q: %v", truncate(string(data), 512), err)}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ListOptions filter a listing (GET /pins).
type ListOptions struct {
	Name   string   // exact, case-sensitive match
	Status []Status // none: the service's default, pinned only
	Limit  int      // 1..1000; 0: the service's default, 10
}

// List lists the pin objects that match.
func (c *Client) List(ctx context.Context, o ListOptions) (PinResults, error) {
	q := url.Values{}
	if o.Name != "" {
		q.Set("name", o.Name)
		q.Set("match", "exact")
	}
	if len(o.Status) > 0 {
		s := make([]string, len(o.Status))
		for i, st := range o.Status {
			s[i] = string(st)
		}
		q.Set("status", strings.Join(s, ","))
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	var res PinResults
	err := c.call(ctx, http.MethodGet, "/pins", q, nil, &res)
	return res, err
}

// Add asks the service to pin p.
func (c *Client) Add(ctx context.Context, p Pin) (PinStatus, error) {
	var st PinStatus
	err := c.call(ctx, http.MethodPost, "/pins", nil, p, &st)
	return st, err
}

// Get is the pin object of a request and its status.
func (c *Client) Get(ctx context.Context, requestID string) (PinStatus, error) {
	var st PinStatus
	err := c.call(ctx, http.MethodGet, "/pins/"+url.PathEscape(requestID), nil, nil, &st)
	return st, err
}

// Delete removes the pin object of a request.
func (c *Client) Delete(ctx context.Context, requestID string) error {
	return c.call(ctx, http.MethodDelete, "/pins/"+url.PathEscape(requestID), nil, nil, nil)
}
