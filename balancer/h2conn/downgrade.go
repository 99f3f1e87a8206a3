// Package h2conn holds what berth's HTTP/2 server (balancer/h2server) and
// the HTTP/2 front (balancer/httpfront/h2front) share about a client
// connection without knowing routes or targets: the client preface, and
// Downgradable, which decides whether a request can be forwarded as
// HTTP/1.1. It imports no other balancer package but the codec's limits
// (balancer/http1).
package h2conn

import "github.com/berth-lb/berth/balancer/http1"

// Preface is what an HTTP/2 client sends first (RFC 9113 3.4).
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// An HTTP/2 request forwarded over HTTP/1.1 has its :method, :path and
// :authority written into a request line and a Host line, where a space or
// a line end would make a second request or another target than the one the
// rules matched. The server refuses, with a stream reset (PROTOCOL_ERROR)
// before the handler runs, a field value with a control byte (NUL, CR, LF,
// DEL, ...; the pseudo-headers' values too), a field name that is not a
// lowercase token, a pseudo-header after a regular field, a connection-
// specific field, several Host fields or one that differs from :authority
// (h2server's headers.go and onHeaders). What it lets through and an HTTP/1.1
// head cannot carry is checked here, before anything is sent: its answer is
// 400.

// Downgradable reports whether a request with this :method, :path (as sent)
// and :authority (or Host) can be forwarded as an HTTP/1.1
// request.
func Downgradable(method, path, authority string) bool {
	switch {
	case !http1.IsToken(method):
		return false
	case method == "CONNECT": // a tunnel through a target, past every rule
		return false
	case path == "*":
		return method == "OPTIONS" && http1.ValidAuthority(authority)
	}
	// The HTTP/1.1 codec's own grammar: a space would end the request
	// target, bytes outside ASCII are read differently by different targets
	// (RFC 3986 wants them percent-encoded), and a "#" would end the path
	// for a target while berth matched the part after it. A "%" must start a
	// percent-encoded byte (RFC 3986 2.1), as HTTP/2 servers have refused
	// (x/net's, berth's before 2026-12-03): targets read a stray one
	// differently (Go's net/http refuses the request). HTTP/1.1 requires
	// Host, and the host rules need one: ":" alone is no authority, which no
	// HTTP/1.1 parser should take as a Host.
	return http1.ValidOriginForm(path) && validPercentEncoding(path) && http1.ValidAuthority(authority)
}

// validPercentEncoding reports whether every "%" of s starts "%" HEXDIG
// HEXDIG.
func validPercentEncoding(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
