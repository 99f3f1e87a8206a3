package balancer

import (
	"fmt"
	"net/netip"

	"github.com/berth-lb/berth/balancer/rules"
)

// xffMode is what a listener does with X-Forwarded-For.
type xffMode uint8

const (
	xffAppend xffMode = iota
	xffPreserve
	xffRemove
)

// maxForwardedFor is how many X-Forwarded-For addresses a request may carry
// before the balancer answers 463, as ALB does.
const maxForwardedFor = 30

// httpPolicies returns the scheme clients use on lc and its X-Forwarded-For mode.
func httpPolicies(lc ListenerConfig) (string, xffMode, error) {
	scheme := "http"
	if lc.Protocol == ProtocolHTTPS {
		scheme = "https"
	}
	switch lc.XForwardedFor {
	case "", XFFAppend:
		return scheme, xffAppend, nil
	case XFFPreserve:
		return scheme, xffPreserve, nil
	case XFFRemove:
		return scheme, xffRemove, nil
	}
	return "", 0, fmt.Errorf("x-forwarded-for mode %q: use %s, %s or %s", lc.XForwardedFor, XFFAppend, XFFPreserve, XFFRemove)
}

// ruleOf is r as the rules package compiles it; target is its action's index.
func ruleOf(r Rule, target int) rules.Rule {
	out := rules.Rule{Priority: r.Priority, Hosts: r.Hosts, Paths: r.Paths, Headers: r.Headers, Methods: r.Methods, SourceIPs: r.SourceIPs, Target: target}
	for _, q := range r.Queries {
		out.Queries = append(out.Queries, rules.QueryPattern{Key: q.Key, Value: q.Value})
	}
	return out
}

// matchRequest finds the action of the request in c.req on rt.
func (c *clientConn) matchRequest(rt *route) *action {
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
	if i := rt.table.MatchRequest(&req); i >= 0 {
		return &rt.actions[i]
	}
	return &rt.fallback
}

// peerAddr parses the client's IP once per connection, for source-ip.
func peerAddr(ip []byte) netip.Addr {
	a, _ := netip.ParseAddr(bstr(ip))
	return a.Unmap()
}
