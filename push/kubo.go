// Package push owns handing roots to a running kubo node through its HTTP
// RPC API: stream the blocks it lacks as one CAR into dag/import, then move
// the pin from the previously pushed root, point an MFS path at the new
// root, and publish it under an IPNS key.
package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/internal/httpapi"
)

// Kubo is a client of one kubo RPC endpoint.
type Kubo struct {
	base   string // http://host:port
	client *http.Client
}

// NewKubo accepts an http(s) URL or a multiaddr such as /ip4/127.0.0.1/tcp/5001.
func NewKubo(api string) (*Kubo, error) {
	base, _, err := httpapi.Endpoint("API", api)
	if err != nil {
		return nil, err
	}
	return &Kubo{base: base, client: &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		ResponseHeaderTimeout: 0, // dag/import answers only when the whole CAR is in
	}}}, nil
}

// URL is the endpoint, normalised; pushes are recorded under it.
func (k *Kubo) URL() string { return k.base }

// Error is an error answered by kubo.
type Error struct {
	Endpoint string
	Message  string
}

func (e *Error) Error() string { return fmt.Sprintf("kubo %s: %s", e.Endpoint, e.Message) }

func (k *Kubo) call(ctx context.Context, cmd string, args url.Values, body io.Reader, contentType string, out any) error {
	endpoint := k.base + "/api/v0/" + cmd
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"?"+args.Encode(), body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("kubo %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("kubo %s: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		var ke struct{ Message string }
		if json.Unmarshal(data, &ke) != nil || ke.Message == "" {
			ke.Message = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
		}
		return &Error{Endpoint: endpoint, Message: ke.Message}
	}
	// kubo streams errors of streaming commands as a trailer object.
	if tr := resp.Trailer.Get("X-Stream-Error"); tr != "" {
		return &Error{Endpoint: endpoint, Message: tr}
	}
	if out != nil {
		dec := json.NewDecoder(strings.NewReader(string(data)))
		for {
			if err := dec.Decode(out); err == io.EOF {
				break
			} else if err != nil {
				return fmt.Errorf("kubo %s: unexpected answer %q: %w", endpoint, data, err)
			}
		}
	}
	return nil
}

// Import streams a CAR (written by writeCAR) into dag/import without
// pinning its roots: the pin moves separately, once the DAG is complete.
func (k *Kubo) Import(ctx context.Context, writeCAR func(io.Writer) error) error {
	body, contentType := httpapi.CARForm(writeCAR)
	args := url.Values{"pin-roots": {"false"}, "stats": {"true"}}
	err := k.call(ctx, "dag/import", args, body, contentType, nil)
	body.CloseWithError(errors.New("import finished"))
	return err
}

// Pin pins root recursively, moving the pin from old when old is defined
// and still pinned.
func (k *Kubo) Pin(ctx context.Context, old, root cid.Cid) error {
	if old.Defined() && !old.Equals(root) {
		err := k.call(ctx, "pin/update", url.Values{"arg": {old.String(), root.String()}, "unpin": {"true"}}, nil, "", nil)
		// kubo (boxo's dspinner) says "'from' cid was not recursively
		// pinned already": a push killed after kubo moved the pin, before
		// the new root was recorded here, left old unpinned.
		var ke *Error
		if err == nil || !errors.As(err, &ke) || !(strings.Contains(ke.Message, "not pinned") || strings.Contains(ke.Message, "not recursively pinned")) {
			return err
		}
	}
	return k.call(ctx, "pin/add", url.Values{"arg": {root.String()}, "recursive": {"true"}}, nil, "", nil)
}

// ToFiles points the MFS path at root, replacing what was there.
func (k *Kubo) ToFiles(ctx context.Context, root cid.Cid, mfsPath string) error {
	err := k.call(ctx, "files/rm", url.Values{"arg": {mfsPath}, "recursive": {"true"}, "force": {"true"}}, nil, "", nil)
	var ke *Error
	if err != nil && !(errors.As(err, &ke) && strings.Contains(ke.Message, "does not exist")) {
		return err
	}
	return k.call(ctx, "files/cp", url.Values{"arg": {"/ipfs/" + root.String(), mfsPath}, "parents": {"true"}}, nil, "", nil)
}

// Publish publishes root under the IPNS key.
func (k *Kubo) Publish(ctx context.Context, root cid.Cid, key string) (string, error) {
	var out struct{ Name, Value string }
	err := k.call(ctx, "name/publish", url.Values{"arg": {"/ipfs/" + root.String()}, "key": {key}, "allow-offline": {"true"}}, nil, "", &out)
	return out.Name, err
}

// Addrs are the node's swarm addresses (kubo's id), each ending in
// /p2p/PEERID: the origins a pinning service fetches a pushed root from.
func (k *Kubo) Addrs(ctx context.Context) ([]string, error) {
	var out struct{ Addresses []string }
	err := k.call(ctx, "id", nil, nil, "", &out)
	return out.Addresses, err
}

// Connect dials the peers at addrs (swarm/connect), one call per peer:
// kubo stops at the first peer it cannot reach. It returns the first
// error, having tried every peer.
func (k *Kubo) Connect(ctx context.Context, addrs []string) error {
	var peers []string
	byPeer := map[string][]string{}
	for _, a := range addrs {
		i := strings.LastIndex(a, "/p2p/")
		if i < 0 {
			continue // kubo cannot dial an address without its peer
		}
		id := a[i+len("/p2p/"):]
		if _, ok := byPeer[id]; !ok {
			peers = append(peers, id)
		}
		byPeer[id] = append(byPeer[id], a)
	}
	var first error
	for _, id := range peers {
		if err := k.call(ctx, "swarm/connect", url.Values{"arg": byPeer[id]}, nil, "", nil); err != nil && first == nil {
			first = err
		}
	}
	return first
}
