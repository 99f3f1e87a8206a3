package balancer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berth-lb/berth/balancer/pool"
	"github.com/berth-lb/berth/balancer/stats"
)

// weightedGroup is one group of a weighted forward with the upper bound of
// its share in [0, total).
type weightedGroup struct {
	group *pool.Group
	stats *stats.Route
	upTo  int
	// token names the group in the BERTHTG cookie.
	token string
}

// StickyCookieGroup is the cookie of a weighted forward's group stickiness.
const StickyCookieGroup = "BERTHTG"

// chooseGroup returns the group the forward action sends a request to and
// the counters of that choice, and records in ex the group and, with group
// stickiness, its cookie. groupToken is the request's BERTHTG cookie, read
// by the caller only when the action has group stickiness.
func (a *action) chooseGroup(ex *exchange, groupToken []byte) (*pool.Group, *stats.Route) {
	if len(a.weighted) == 0 {
		ex.group = a.group.Name
		return a.group, a.stats
	}
	wg := a.pickWeighted(groupToken)
	if a.groupStickiness > 0 {
		ex.groupToken, ex.groupStickiness = wg.token, a.groupStickiness
	}
	ex.group = wg.group.Name
	return wg.group, wg.stats
}

// pickWeighted chooses the group of a weighted forward: the one groupToken
// (the request's BERTHTG cookie, nil without group stickiness) names while
// that group still has a weight, else by weight.
func (a *action) pickWeighted(groupToken []byte) *weightedGroup {
	if groupToken != nil {
		for i := range a.weighted {
			if a.weighted[i].token == bstr(groupToken) {
				return &a.weighted[i]
			}
		}
	}
	n := rand.IntN(a.totalWeight)
	for i := range a.weighted {
		if n < a.weighted[i].upTo {
			return &a.weighted[i]
		}
	}
	return &a.weighted[len(a.weighted)-1]
}

func (b *Balancer) compileWeighted(listener string, wf []WeightedGroup, stickiness time.Duration, groups map[string]*pool.Group) (action, error) {
	if len(wf) > MaxForwardGroups {
		return action{}, fmt.Errorf("forwards to %d groups: at most %d", len(wf), MaxForwardGroups)
	}
	if stickiness != 0 && (stickiness < time.Second || stickiness > 7*24*time.Hour) {
		return action{}, fmt.Errorf("group stickiness %s: use 1s..7d", stickiness)
	}
	a := action{groupStickiness: stickiness}
	seen := map[string]bool{}
	for _, w := range wf {
		g, ok := groups[w.Group]
		if !ok {
			return action{}, fmt.Errorf("forwards to unknown group %q", w.Group)
		}
		if seen[w.Group] {
			return action{}, fmt.Errorf("forwards to group %q twice: list each group once", w.Group)
		}
		seen[w.Group] = true
		if w.Weight < 0 || w.Weight > MaxForwardWeight {
			return action{}, fmt.Errorf("group %q has weight %d: use 0..%d", w.Group, w.Weight, MaxForwardWeight)
		}
		if w.Weight == 0 {
			continue
		}
		a.totalWeight += w.Weight
		a.weighted = append(a.weighted, weightedGroup{group: g, stats: b.routeStats(listener, w.Group), upTo: a.totalWeight, token: stickyToken("group:" + w.Group)})
	}
	if a.totalWeight == 0 {
		return action{}, errors.New("every group of the forward has weight 0: give one a weight above 0")
	}
	a.group, a.stats = a.weighted[0].group, a.weighted[0].stats
	return a, nil
}

// redirectAction is a compiled redirect: each part is a template.
type redirectAction struct {
	status                            int
	protocol, host, port, path, query string
}

// Redirect placeholders, replaced by the request's parts.
const (
	phProtocol = "#{protocol}"
	phHost     = "#{host}"
	phPort     = "#{port}"
	phPath     = "#{path}"
	phQuery    = "#{query}"
)

// compileRedirect checks r as ALB does: 301 or 302, a protocol of HTTP, HTTPS
// or #{protocol}, a path starting with "/", no HTTPS to HTTP, and at least one
// part that changes. scheme is the listener's ("http" or "https").
func compileRedirect(r *Redirect, scheme string) (*redirectAction, error) {
	if r.Status != 301 && r.Status != 302 {
		return nil, fmt.Errorf("redirect status %d: use 301 or 302", r.Status)
	}
	ra := &redirectAction{status: r.Status, protocol: r.Protocol, host: r.Host, port: r.Port, path: r.Path, query: r.Query}
	if ra.protocol == "" {
		ra.protocol = phProtocol
	}
	switch strings.ToLower(ra.protocol) {
	case "http", "https":
		ra.protocol = strings.ToLower(ra.protocol)
	case phProtocol:
	default:
		return nil, fmt.Errorf("redirect protocol %q: use HTTP, HTTPS or #{protocol}", r.Protocol)
	}
	if scheme == "https" && ra.protocol == "http" {
		return nil, errors.New("redirect from HTTPS to HTTP: not allowed (ALB refuses it too)")
	}
	if ra.host == "" {
		ra.host = phHost
	}
	if ra.port == "" {
		ra.port = phPort
	}
	if ra.path == "" {
		ra.path = "/" + phPath
	}
	if ra.path[0] != '/' {
		return nil, fmt.Errorf("redirect path %q must start with /", r.Path)
	}
	if ra.query == "" {
		ra.query = phQuery
	}
	if ra.port != phPort {
		if p, err := strconv.Atoi(ra.port); err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("redirect port %q: use 1..65535 or #{port}", r.Port)
		}
	}
	if (ra.protocol == phProtocol || ra.protocol == scheme) && ra.host == phHost && ra.port == phPort && ra.path == "/"+phPath && ra.query == phQuery {
		return nil, errors.New("the redirect changes nothing and would loop: change the protocol, host, port, path or query")
	}
	return ra, nil
}

// redirectParts are a request's values for the placeholders.
type redirectParts struct {
	protocol, host, port, path, query []byte // path without its leading "/"
}

// appendLocation appends the Location of the redirect for the request parts p.
// A port that is the protocol's default is left out, as ALB does.
func (ra *redirectAction) appendLocation(dst []byte, p *redirectParts) []byte {
	start := len(dst)
	dst = expand(dst, ra.protocol, p)
	proto := string(dst[start:]) // short; only compared below
	dst = append(dst, "://"...)
	dst = expand(dst, ra.host, p)
	portStart := len(dst)
	dst = append(dst, ':')
	dst = expand(dst, ra.port, p)
	if port := dst[portStart+1:]; len(port) == 0 || proto == "http" && string(port) == "80" || proto == "https" && string(port) == "443" {
		dst = dst[:portStart]
	}
	dst = expand(dst, ra.path, p)
	queryStart := len(dst)
	dst = append(dst, '?')
	dst = expand(dst, ra.query, p)
	if len(dst) == queryStart+1 {
		dst = dst[:queryStart]
	}
	return dst
}

// expand appends template with its placeholders replaced.
func expand(dst []byte, template string, p *redirectParts) []byte {
	for {
		i := strings.Index(template, "#{")
		if i < 0 {
			return append(dst, template...)
		}
		dst = append(dst, template[:i]...)
		rest := template[i:]
		switch {
		case strings.HasPrefix(rest, phProtocol):
			dst, template = append(dst, p.protocol...), rest[len(phProtocol):]
		case strings.HasPrefix(rest, phHost):
			dst, template = append(dst, p.host...), rest[len(phHost):]
		case strings.HasPrefix(rest, phPort):
			dst, template = append(dst, p.port...), rest[len(phPort):]
		case strings.HasPrefix(rest, phPath):
			dst, template = append(dst, p.path...), rest[len(phPath):]
		case strings.HasPrefix(rest, phQuery):
			dst, template = append(dst, p.query...), rest[len(phQuery):]
		default:
			dst, template = append(dst, "#{"...), rest[2:]
		}
	}
}

// appendRedirectResponse appends the complete response of a redirect.
func appendRedirectResponse(dst []byte, status int, location []byte, keep bool) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(status)...)
	dst = append(dst, "\r\nLocation: "...)
	dst = append(dst, location...)
	dst = append(dst, "\r\nContent-Length: 0\r\n"...)
	if !keep {
		dst = append(dst, "Connection: close\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// MaxFixedBody is the largest fixed-response body, as on ALB.
const MaxFixedBody = 1024

// FixedContentTypes are the content types a fixed response may have, as on ALB.
var FixedContentTypes = []string{"text/plain", "text/css", "text/html", "application/javascript", "application/json"}

// checkFixed applies ALB's limits to a fixed response.
func checkFixed(f *FixedResponse) error {
	if f.Status < 200 || f.Status > 599 || f.Status/100 == 3 {
		return fmt.Errorf("fixed-response status %d: use 2xx, 4xx or 5xx (a redirect action answers 3xx)", f.Status)
	}
	if len(f.Body) > MaxFixedBody {
		return fmt.Errorf("fixed-response body of %d bytes: at most %d", len(f.Body), MaxFixedBody)
	}
	if f.ContentType != "" {
		base, _, _ := strings.Cut(f.ContentType, ";")
		ok := false
		for _, ct := range FixedContentTypes {
			if strings.EqualFold(strings.TrimSpace(base), ct) {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("fixed-response content type %q: use one of %s", f.ContentType, strings.Join(FixedContentTypes, ", "))
		}
	}
	return nil
}

// Names of the balancer's stickiness cookies.
const (
	StickyCookieLB  = "BERTHLB"
	StickyCookieApp = "BERTHAPP"
)

// DefaultStickinessDuration is the lifetime of a stickiness cookie, as on ALB.
const DefaultStickinessDuration = 24 * time.Hour

// stickyToken is the opaque cookie value for a target: the same on every
// node for the same target ID, so a fleet agrees on it.
func stickyToken(id string) string {
	return strconv.FormatUint(pool.HashBytes([]byte("berth-sticky:"+id)), 36)
}

func (b *Balancer) compileStickiness(gc GroupConfig) (*pool.Stickiness, error) {
	sc := gc.Stickiness
	if sc == nil {
		return nil, nil
	}
	s := &pool.Stickiness{Duration: sc.Duration, Targets: map[string]*pool.Target{}, Tokens: map[*pool.Target]string{}}
	if s.Duration == 0 {
		s.Duration = DefaultStickinessDuration
	}
	if s.Duration < time.Second || s.Duration > 7*24*time.Hour {
		return nil, fmt.Errorf("balancer: group %s: stickiness duration %s: use 1s..7d", gc.Name, sc.Duration)
	}
	switch sc.Type {
	case StickinessLBCookie:
		s.Cookie = StickyCookieLB
	case StickinessAppCookie:
		if sc.Cookie == "" || strings.ContainsAny(sc.Cookie, "=; ,\t") || strings.HasPrefix(sc.Cookie, "BERTH") || strings.HasPrefix(sc.Cookie, "AWSALB") {
			return nil, fmt.Errorf("balancer: group %s: app_cookie stickiness needs the application's cookie name (not BERTH* or AWSALB*), got %q", gc.Name, sc.Cookie)
		}
		s.Cookie, s.AppCookie = StickyCookieApp, sc.Cookie
	default:
		return nil, fmt.Errorf("balancer: group %s: stickiness type %q: use %s or %s", gc.Name, sc.Type, StickinessLBCookie, StickinessAppCookie)
	}
	for _, tc := range gc.Targets {
		if !tc.Serving && !tc.Draining {
			continue
		}
		t := b.targetState(tc)
		tok := stickyToken(tc.ID)
		s.Targets[tok], s.Tokens[t] = t, tok
	}
	return s, nil
}
