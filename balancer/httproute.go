package balancer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/berth-lb/berth/balancer/httpfront"
	"github.com/berth-lb/berth/balancer/pool"
	"github.com/berth-lb/berth/balancer/rules"
)

// The HTTP front's part of Apply: a listener's rules, policies and actions
// compiled into the front's Route (httpfront.Route, httpfront.Action).

// httpPolicies returns the scheme clients use on lc and its X-Forwarded-For mode.
func httpPolicies(lc ListenerConfig) (string, httpfront.XFFMode, error) {
	scheme := "http"
	if lc.Protocol == ProtocolHTTPS {
		scheme = "https"
	}
	switch lc.XForwardedFor {
	case "", XFFAppend:
		return scheme, httpfront.XFFAppend, nil
	case XFFPreserve:
		return scheme, httpfront.XFFPreserve, nil
	case XFFRemove:
		return scheme, httpfront.XFFRemove, nil
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

func (b *Balancer) compileWeighted(listener string, wf []WeightedGroup, stickiness time.Duration, groups map[string]*pool.Group) (httpfront.Action, error) {
	if len(wf) > MaxForwardGroups {
		return httpfront.Action{}, fmt.Errorf("forwards to %d groups: at most %d", len(wf), MaxForwardGroups)
	}
	if stickiness != 0 && (stickiness < time.Second || stickiness > 7*24*time.Hour) {
		return httpfront.Action{}, fmt.Errorf("group stickiness %s: use 1s..7d", stickiness)
	}
	a := httpfront.Action{GroupStickiness: stickiness}
	seen := map[string]bool{}
	for _, w := range wf {
		g, ok := groups[w.Group]
		if !ok {
			return httpfront.Action{}, fmt.Errorf("forwards to unknown group %q", w.Group)
		}
		if seen[w.Group] {
			return httpfront.Action{}, fmt.Errorf("forwards to group %q twice: list each group once", w.Group)
		}
		seen[w.Group] = true
		if w.Weight < 0 || w.Weight > MaxForwardWeight {
			return httpfront.Action{}, fmt.Errorf("group %q has weight %d: use 0..%d", w.Group, w.Weight, MaxForwardWeight)
		}
		if w.Weight == 0 {
			continue
		}
		a.TotalWeight += w.Weight
		a.Weighted = append(a.Weighted, httpfront.Share{Group: g, Stats: b.routeStats(listener, w.Group), UpTo: a.TotalWeight, Token: stickyToken("group:" + w.Group)})
	}
	if a.TotalWeight == 0 {
		return httpfront.Action{}, errors.New("every group of the forward has weight 0: give one a weight above 0")
	}
	a.Group, a.Stats = a.Weighted[0].Group, a.Weighted[0].Stats
	return a, nil
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
