package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
)

// BlockTimeout bounds one block's fetch. A kubo node that lacks a block
// looks for it on the network with no end; the target is expected to
// hold every block of its own root.
const BlockTimeout = time.Minute

// client is shared by the sources: many blocks are fetched at once from
// one host, so idle connections are kept for all of them (Go keeps two
// per host by default and would open and close the rest each time).
var client = &http.Client{Transport: &http.Transport{
	DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	MaxIdleConnsPerHost: 64,
	IdleConnTimeout:     time.Minute,
}}

// Gateway reads blocks from a trustless gateway: GET /ipfs/{cid}?format=raw.
type Gateway struct{ base string }

// NewGateway accepts the gateway's http(s) URL.
func NewGateway(u string) (*Gateway, error) {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return nil, fmt.Errorf("gateway %q: want http(s)://HOST[:PORT]", u)
	}
	return &Gateway{base: strings.TrimRight(p.Scheme+"://"+p.Host+p.Path, "/")}, nil
}

func (g *Gateway) String() string { return g.base }

// Block implements Source.
func (g *Gateway) Block(ctx context.Context, c cid.Cid) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, BlockTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/ipfs/"+c.String()+"?format=raw", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/vnd.ipld.raw")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBlockSize+1))
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, fmt.Errorf("%s: %w", resp.Status, ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(data[:min(len(data), 512)])))
	case err != nil:
		return nil, err
	case len(data) > MaxBlockSize:
		return nil, fmt.Errorf("answer larger than %d bytes", MaxBlockSize)
	}
	return data, nil
}

// Kubo reads blocks and names from a kubo node's RPC API.
type Kubo struct{ base string }

// NewKubo takes the API's normalised http(s) URL (push.Kubo's URL).
func NewKubo(base string) *Kubo { return &Kubo{base: strings.TrimRight(base, "/")} }

func (k *Kubo) String() string { return k.base }

// Block implements Source with block/get.
func (k *Kubo) Block(ctx context.Context, c cid.Cid) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, BlockTimeout)
	defer cancel()
	data, err := k.call(ctx, "block/get", url.Values{"arg": {c.String()}, "timeout": {BlockTimeout.String()}}, MaxBlockSize+1)
	if err != nil {
		return nil, err
	}
	if len(data) > MaxBlockSize {
		return nil, fmt.Errorf("answer larger than %d bytes", MaxBlockSize)
	}
	return data, nil
}

// FilesRoot is the root at the MFS path (files/stat), cid.Undef if there
// is nothing there.
func (k *Kubo) FilesRoot(ctx context.Context, mfsPath string) (cid.Cid, error) {
	var out struct{ Hash string }
	data, err := k.call(ctx, "files/stat", url.Values{"arg": {mfsPath}, "hash": {"true"}}, 1<<20)
	if err != nil {
		if kubosNotFound(err) {
			return cid.Undef, nil
		}
		return cid.Undef, fmt.Errorf("MFS path %s: %w", mfsPath, err)
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return cid.Undef, fmt.Errorf("MFS path %s: unexpected answer %q", mfsPath, data)
	}
	c, err := cid.Decode(out.Hash)
	if err != nil {
		return cid.Undef, fmt.Errorf("MFS path %s: %w", mfsPath, err)
	}
	return c, nil
}

// Published is the root the IPNS name of the node's key called key points
// at (key/list, then name/resolve), cid.Undef if the key does not exist or
// has published nothing.
func (k *Kubo) Published(ctx context.Context, key string) (cid.Cid, error) {
	var keys struct{ Keys []struct{ Name, Id string } }
	data, err := k.call(ctx, "key/list", url.Values{"l": {"true"}}, 16<<20)
	if err == nil {
		err = json.Unmarshal(data, &keys)
	}
	if err != nil {
		return cid.Undef, fmt.Errorf("IPNS key %s: %w", key, err)
	}
	id := ""
	for _, kk := range keys.Keys {
		if kk.Name == key {
			id = kk.Id
		}
	}
	if id == "" {
		return cid.Undef, nil
	}
	var out struct{ Path string }
	data, err = k.call(ctx, "name/resolve", url.Values{"arg": {"/ipns/" + id}, "recursive": {"true"}}, 1<<20)
	if err != nil {
		if kubosNotFound(err) {
			return cid.Undef, nil
		}
		return cid.Undef, fmt.Errorf("IPNS key %s: %w", key, err)
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return cid.Undef, fmt.Errorf("IPNS key %s: unexpected answer %q", key, data)
	}
	p, ok := strings.CutPrefix(out.Path, "/ipfs/")
	c, err := cid.Decode(p)
	if !ok || err != nil {
		// A name that points at something other than a root of ours.
		return cid.Undef, fmt.Errorf("IPNS key %s points at %q, not /ipfs/CID", key, out.Path)
	}
	return c, nil
}

// kuboError is an error answered by kubo.
type kuboError struct{ cmd, msg string }

func (e *kuboError) Error() string { return fmt.Sprintf("kubo %s: %s", e.cmd, e.msg) }

// kubosNotFound reports whether kubo said there is nothing there: an MFS
// path that does not exist, a name with no record.
func kubosNotFound(err error) bool {
	ke, ok := err.(*kuboError)
	if !ok {
		return false
	}
	for _, s := range []string{"does not exist", "not found", "could not resolve", "no such"} {
		if strings.Contains(ke.msg, s) {
			return true
		}
	}
	return false
}

// call runs one RPC command and returns its answer, up to limit bytes
// (more is cut, for the caller to notice).
func (k *Kubo) call(ctx context.Context, cmd string, args url.Values, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.base+"/api/v0/"+cmd+"?"+args.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Message string }
		if json.Unmarshal(data, &e) != nil || e.Message == "" {
			e.Message = resp.Status + ": " + strings.TrimSpace(string(data[:min(len(data), 512)]))
		}
		if cmd == "block/get" && (strings.Contains(e.Message, "not found") || strings.Contains(e.Message, "context deadline exceeded")) {
			return nil, fmt.Errorf("%w (%s)", ErrNotFound, e.Message)
		}
		return nil, &kuboError{cmd: cmd, msg: e.Message}
	}
	if tr := resp.Trailer.Get("X-Stream-Error"); tr != "" {
		return nil, &kuboError{cmd: cmd, msg: tr}
	}
	return data, nil
}
