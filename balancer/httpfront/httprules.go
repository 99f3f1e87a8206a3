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

// maxForwardedFor is how many X-Forwarded-For addresses a request may carry
// before the balancer answers 463, as ALB does.
const maxForwardedFor = 30

// matchRequest finds the action of the request in c.req on rt.
func (c *ClientConn) matchRequest(rt *Route) *Action {
	host, path := c.req.HostAndPath()
	matchPath := bstr(path)
	if normal, changed := rules.NormalizePath(c.matchPath, matchPath); changed {
		c.matchPath = normal
		matchPath = bstr(normal)
	}
	req := rules.Request{
		Host:    rules.NormalizeHost(bstr(host)),
		Path:    matchPath,
		Method:  bstr(c.req.Method()),
		Query:   bstr(c.req.Query()),
		Headers: &c.req,
		Source:  c.sourceAddr,
	}
	if i := rt.Table.MatchRequest(&req); i >= 0 {
		return &rt.Actions[i]
	}
	return &rt.Fallback
}

// peerAddr parses the client's IP once per connection, for source-ip.
func peerAddr(ip []byte) netip.Addr {
	a, _ := netip.ParseAddr(bstr(ip))
	return a.Unmap()
}
