package httpfront

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

// Share is one group of a weighted forward with the upper bound of
// its share in [0, total).
type Share struct {
	Group *pool.Group
	Stats *stats.Route
	UpTo  int
	// Token names the group in the BERTHTG cookie.
	Token string
}

// Action is what a listener does with a request that a rule (or none)
// matched: forward to a group, split among weighted groups, redirect, or
// answer a fixed response. The kernel compiles it; it never changes.
type Action struct {
	Group *pool.Group // forward
	// Weighted, when set, splits requests among groups by weight
	// (Group and Stats are its first group's).
	Weighted    []Share
	TotalWeight int
	// GroupStickiness keeps a client on its weighted group by BERTHTG; 0: off.
	GroupStickiness time.Duration
	Redirect        *RedirectAction
	Fixed           []byte       // or a complete pre-rendered response
	FixedPage       Page         // and its body, for HTTP/2 (FixedAction, NotFound)
	Stats           *stats.Route // counters of this listener and group
	Code            int          // status of the fixed response
	// Priority is the rule's, for the access log; 0 for the default action.
	Priority int
}

// StickyCookieGroup is the cookie of a weighted forward's group stickiness.
const StickyCookieGroup = "BERTHTG"

// ChooseGroup returns the group the forward action sends a request to and
// the counters of that choice, and records in ex the group and, with group
// stickiness, its cookie. groupToken is the request's BERTHTG cookie, read
// by the caller only when the action has group stickiness.
func (a *Action) ChooseGroup(ex *Exchange, groupToken []byte) (*pool.Group, *stats.Route) {
	if len(a.Weighted) == 0 {
		ex.Group = a.Group.Name
		return a.Group, a.Stats
	}
	wg := a.pickWeighted(groupToken)
	if a.GroupStickiness > 0 {
		ex.GroupToken, ex.GroupStickiness = wg.Token, a.GroupStickiness
	}
	ex.Group = wg.Group.Name
	return wg.Group, wg.Stats
}

// pickWeighted chooses the group of a weighted forward: the one groupToken
// (the request's BERTHTG cookie, nil without group stickiness) names while
// that group still has a weight, else by weight.
func (a *Action) pickWeighted(groupToken []byte) *Share {
	if groupToken != nil {
		for i := range a.Weighted {
			if a.Weighted[i].Token == Bstr(groupToken) {
				return &a.Weighted[i]
			}
		}
	}
	n := rand.IntN(a.TotalWeight)
	for i := range a.Weighted {
		if n < a.Weighted[i].UpTo {
			return &a.Weighted[i]
		}
	}
	return &a.Weighted[len(a.Weighted)-1]
}

// RedirectAction is a compiled redirect: each part is a template.
type RedirectAction struct {
	Status                            int
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

// CompileRedirect checks r as ALB does: 301 or 302, a protocol of HTTP, HTTPS
// or #{protocol}, a path starting with "/", no HTTPS to HTTP, and at least one
// part that changes. scheme is the listener's ("http" or "https").
func CompileRedirect(r *Redirect, scheme string) (*RedirectAction, error) {
	if r.Status != 301 && r.Status != 302 {
		return nil, fmt.Errorf("redirect status %d: use 301 or 302", r.Status)
	}
	ra := &RedirectAction{Status: r.Status, protocol: r.Protocol, host: r.Host, port: r.Port, path: r.Path, query: r.Query}
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

// RedirectParts are a request's values for the placeholders.
type RedirectParts struct {
	Protocol, Host, Port, Path, Query []byte // path without its leading "/"
}

// AppendLocation appends the Location of the redirect for the request parts p.
// A port that is the protocol's default is left out, as ALB does.
func (ra *RedirectAction) AppendLocation(dst []byte, p *RedirectParts) []byte {
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
func expand(dst []byte, template string, p *RedirectParts) []byte {
	for {
		i := strings.Index(template, "#{")
		if i < 0 {
			return append(dst, template...)
		}
		dst = append(dst, template[:i]...)
		rest := template[i:]
		switch {
		case strings.HasPrefix(rest, phProtocol):
			dst, template = append(dst, p.Protocol...), rest[len(phProtocol):]
		case strings.HasPrefix(rest, phHost):
			dst, template = append(dst, p.Host...), rest[len(phHost):]
		case strings.HasPrefix(rest, phPort):
			dst, template = append(dst, p.Port...), rest[len(phPort):]
		case strings.HasPrefix(rest, phPath):
			dst, template = append(dst, p.Path...), rest[len(phPath):]
		case strings.HasPrefix(rest, phQuery):
			dst, template = append(dst, p.Query...), rest[len(phQuery):]
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

// FixedAction is the action that answers f, checked against ALB's limits and
// rendered once for HTTP/1.1 and HTTP/2.
func FixedAction(f *FixedResponse, counters *stats.Route) (Action, error) {
	if err := checkFixed(f); err != nil {
		return Action{}, err
	}
	raw, fixedPage := renderFixed(f)
	return Action{Fixed: raw, FixedPage: fixedPage, Code: f.Status, Stats: counters}, nil
}

// NotFound is the action of a listener with no default: the balancer's 404.
func NotFound(counters *stats.Route) Action {
	return Action{Fixed: pageNotFound, FixedPage: ErrorBodies[404][0], Code: 404, Stats: counters}
}

// Redirect answers with a redirect built from the request's parts. Each
// field may use #{protocol}, #{host}, #{port}, #{path} and #{query}; an
// empty field keeps the request's value. Path must start with "/".
type Redirect struct {
	Status   int // 301 or 302
	Protocol string
	Host     string
	Port     string
	Path     string
	Query    string
}

// FixedResponse is answered by the balancer itself.
type FixedResponse struct {
	Status      int
	ContentType string
	Body        string
}
