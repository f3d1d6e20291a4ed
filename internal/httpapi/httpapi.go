// Package httpapi owns what the clients of IPFS's HTTP APIs (kubo's RPC
// API, IPFS Cluster's REST API) share: the endpoint, given as a URL or as
// a multiaddr, and a CAR streamed up as a multipart form.
package httpapi

import (
	"fmt"
	"io"
	"mime/multipart"
	"net/url"
	"strings"
)

// Endpoint parses api, an http(s) URL or a multiaddr
// /ip4|ip6|dns*/HOST/tcp/PORT[/...], into the base URL requests go under
// (scheme://HOST[:PORT][/PATH], without a trailing slash, query or
// credentials) and the URL's credentials (nil without). what names the
// API in errors.
func Endpoint(what, api string) (base string, user *url.Userinfo, err error) {
	if strings.HasPrefix(api, "/") {
		p := strings.Split(strings.Trim(api, "/"), "/")
		if len(p) < 4 || p[2] != "tcp" || (p[0] != "ip4" && p[0] != "ip6" && !strings.HasPrefix(p[0], "dns")) {
			return "", nil, fmt.Errorf("%s multiaddr %q: want /ip4/HOST/tcp/PORT", what, api)
		}
		host := p[1]
		if p[0] == "ip6" {
			host = "[" + host + "]"
		}
		return "http://" + host + ":" + p[3], nil, nil
	}
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", nil, fmt.Errorf("%s URL %q: want http(s)://HOST:PORT or /ip4/HOST/tcp/PORT", what, api)
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/"), u.User, nil
}

// CARForm is a multipart form whose one file, delta.car, is what writeCAR
// writes, made as the request sends it. Once the request has returned,
// close body with an error: a writeCAR the server stopped reading then
// ends instead of blocking.
func CARForm(writeCAR func(io.Writer) error) (body *io.PipeReader, contentType string) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, err := mw.CreateFormFile("file", "delta.car")
		if err == nil {
			err = writeCAR(part)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr, mw.FormDataContentType()
}
