// Package gateway owns serving the store over HTTP as an IPFS trustless
// gateway (boxo's gateway package): raw blocks and CAR responses that any
// IPFS client verifies by hash, and optionally deserialized (browser)
// responses with directory listings.
package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/ipfs/boxo/blockservice"
	bstore "github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/gateway"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure the server.
type Options struct {
	Listen string // host:port
	Browse bool   // deserialized responses (files, directory listings)
}

// Handler serves /ipfs/ paths from bs. Every block boxo reads is checked
// against its CID by the blockservice, so a corrupt block in the store is
// refused rather than sent.
func Handler(bs bstore.Blockstore, browse bool) (http.Handler, error) {
	bsvc := blockservice.New(bs, nil) // offline: never asks the network
	backend, err := gateway.NewBlocksBackend(bsvc)
	if err != nil {
		return nil, err
	}
	h := gateway.NewHandler(gateway.Config{
		DeserializedResponses: browse,
		// A private registry: boxo registers its metrics once per registry
		// and tests start several servers in one process.
		MetricsRegistry: prometheus.NewRegistry(),
	}, backend)
	mux := http.NewServeMux()
	mux.Handle("/ipfs/", h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "ipfs-sync serves /ipfs/{cid} (trustless gateway: ?format=raw or ?format=car)", http.StatusNotFound)
	})
	return mux, nil
}

// Serve listens on opts.Listen and serves until ctx ends. ready, if not
// nil, receives the address actually listened on.
func Serve(ctx context.Context, bs bstore.Blockstore, opts Options, ready func(addr string)) error {
	h, err := Handler(bs, opts.Browse)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(l.Addr().String())
	}
	// A client that stops reading or leaves a keep-alive connection idle
	// must not hold a descriptor and a goroutine for ever. A whole-response
	// WriteTimeout would cut off slow but healthy downloads of big CARs, so
	// each write gets its own deadline instead.
	srv := &http.Server{Handler: stallGuard(h), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idleTimeout}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

const idleTimeout = 2 * time.Minute

// stallTimeout is the longest a single write may wait on the client.
var stallTimeout = time.Minute

// stallGuard gives every write of a response a fresh deadline.
func stallGuard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w)}, r)
	})
}

type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(stallTimeout))
	return d.ResponseWriter.Write(p)
}

// Flush keeps streaming responses streaming through the wrapper.
func (d *deadlineWriter) Flush() { _ = d.rc.Flush() }

// Unwrap lets http.ResponseController reach the connection (Flush).
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
