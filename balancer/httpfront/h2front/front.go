// Package h2front is the HTTP/2 half of berth's HTTP front: it serves the
// HTTP/2 connections of http (h2c, sniffed) and https (ALPN) listeners with
// berth's HTTP/2 server (balancer/h2server) and proxies each stream to a target, over HTTP/2
// (gRPC) or downgraded to HTTP/1.1. A plain connection that turns out to be
// HTTP/1.1 goes to balancer/httpfront.Serve.
//
// Every decision is httpfront's, shared with HTTP/1.1 so both protocols
// answer alike: the Route's rules and actions, the Exchange and its
// access-log line, the cookies, request IDs and error pages. This package
// imports httpfront and never the other way; it imports nothing of the
// kernel, agent/ or cmd/. It must not block outside a client's or a
// target's I/O, and must not keep per-request state on the connection:
// streams run concurrently.
package h2front

import (
	"net/http"

	"github.com/berth-lb/berth/balancer/httpfront"
	"github.com/berth-lb/berth/balancer/pool"
)

// Listener is the kernel's listener as the HTTP/2 front sees it: the HTTP
// front's, plus what only HTTP/2 needs.
type Listener interface {
	httpfront.Listener
	// TrackH2 keeps an HTTP/2 connection in the listener's sets, for
	// shutdown and draining, until untrack is called.
	TrackH2(c *H2Conn) (untrack func())
	// Transport is the HTTP/2 client toward g's targets (gRPC).
	Transport(g *pool.Group) http.RoundTripper
	// Hook is the tests' hook, called at the start of every HTTP/2 stream.
	Hook(where string)
}
