package h2conn

import "github.com/berth-lb/berth/balancer/http1"

// An HTTP/2 request forwarded over HTTP/1.1 has its :method, :path and
// :authority written into a request line and a Host line, where a space or
// a line end would make a second request or another target than the one the
// rules matched. x/net/http2 refuses, with a stream reset (PROTOCOL_ERROR)
// before the handler runs, a field value with a control byte (NUL, CR, LF,
// DEL, ...; the pseudo-headers' values too), a field name that is not a
// lowercase token, a pseudo-header after a regular field, several Host
// fields or one that differs from :authority, an :authority with userinfo
// or bytes a host cannot have, and a :path that starts with neither "/" nor
// "*". What it lets through and an HTTP/1.1 head cannot carry is checked
// here, before anything is sent: its answer is 400.

// Downgradable reports whether a request with this :method, :path (x/net's
// RequestURI) and :authority (or Host) can be forwarded as an HTTP/1.1
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
	// for a target while berth matched the part after it. HTTP/1.1 requires
	// Host, and the host rules need one: x/net lets ":" through as an
	// authority, which no HTTP/1.1 parser should take as a Host.
	return http1.ValidOriginForm(path) && http1.ValidAuthority(authority)
}
