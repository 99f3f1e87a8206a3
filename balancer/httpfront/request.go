package httpfront

import (
	"bytes"

	"github.com/berth-lb/berth/balancer/http1"
)

// request is a client's request head as the codec read it, with what the
// balancer works out of it once per request.
type request struct {
	http1.Head
	// forwardedFor counts the addresses of the X-Forwarded-For lines.
	forwardedFor int
	// upgrade is true when the request asks to switch to WebSocket, the one
	// protocol berth passes an upgrade on for; else Upgrade is dropped.
	upgrade bool
}

// inspect works out the request's own facts after its head was read.
func (r *request) inspect() {
	r.forwardedFor, r.upgrade = 0, false
	for i := range r.Fields {
		f := &r.Fields[i]
		switch f.Kind {
		case http1.FieldXForwardedFor:
			if v := f.Value.Of(r.Raw); len(v) > 0 {
				r.forwardedFor += 1 + bytes.Count(v, []byte{','})
			}
		case http1.FieldUpgrade:
			r.upgrade = r.Upgrade && http1.EqualFold(f.Value.Of(r.Raw), "websocket")
		}
	}
}

// wantsJSON reports whether Accept names application/json: the balancer's
// own error pages are then JSON. Asked only when berth answers itself.
func (r *request) wantsJSON() bool {
	for i := range r.Fields {
		if f := &r.Fields[i]; f.Kind == http1.FieldAccept && ContainsFold(f.Value.Of(r.Raw), "application/json") {
			return true
		}
	}
	return false
}

// NumHeaders lets the rules read a request head in place.
func (r *request) NumHeaders() int { return len(r.Fields) }

// HeaderAt returns header line i's name and value.
func (r *request) HeaderAt(i int) (name, value []byte) {
	f := &r.Fields[i]
	return f.Name.Of(r.Raw), f.Value.Of(r.Raw)
}

// ContainsFold reports whether b contains the lower-case ASCII string sub,
// ignoring case.
func ContainsFold(b []byte, sub string) bool {
	for i := 0; i+len(sub) <= len(b); i++ {
		if http1.EqualFold(b[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// Idempotent methods may be retried on a new connection when a reused one
// failed before any byte of the response arrived.
func Idempotent(method []byte) bool {
	switch string(method) { // the compiler does not allocate for a switch on string(bytes)
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}
