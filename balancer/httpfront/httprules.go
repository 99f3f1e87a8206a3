package httpfront

import (
	"net/netip"

	"github.com/berth-lb/berth/balancer/rules"
)

// XFFMode is what a listener does with X-Forwarded-For.
type XFFMode uint8

const (
	XFFAppend XFFMode = iota
	XFFPreserve
	XFFRemove
)

// MaxForwardedFor is how many X-Forwarded-For addresses a request may carry
// before the balancer answers 463, as ALB does.
const MaxForwardedFor = 30

// matchRequest finds the action of the request in c.req on rt.
func (c *ClientConn) matchRequest(rt *Route) *Action {
	host, path := c.req.HostAndPath()
	matchPath := Bstr(path)
	if normal, changed := rules.NormalizePath(c.matchPath, matchPath); changed {
		c.matchPath = normal
		matchPath = Bstr(normal)
	}
	req := rules.Request{
		Host:    rules.NormalizeHost(Bstr(host)),
		Path:    matchPath,
		Method:  Bstr(c.req.Method()),
		Query:   Bstr(c.req.Query()),
		Headers: &c.req,
		Source:  c.sourceAddr,
	}
	if i := rt.Table.MatchRequest(&req); i >= 0 {
		return &rt.Actions[i]
	}
	return &rt.Fallback
}

// PeerAddr parses the client's IP once per connection, for source-ip.
func PeerAddr(ip []byte) netip.Addr {
	a, _ := netip.ParseAddr(Bstr(ip))
	return a.Unmap()
}
