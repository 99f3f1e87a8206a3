package config

import (
	"crypto/tls"
	"fmt"
	"mime"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-lb/berth/internal/matcher"
)

var (
	listenerName = regexp.MustCompile(`^[a-z0-9-]+$`)
	groupName    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	labelPrefix  = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)
	hostPattern  = regexp.MustCompile(`^[a-z0-9.*?-]+$`)
	headerName   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}$`)
	methodName   = regexp.MustCompile(`^[A-Z_-]{1,40}$`)
)

// ALB's limits on actions and stickiness.
const (
	maxForwardGroups    = 5
	maxForwardWeight    = 999
	maxStickiness       = 7 * 24 * time.Hour
	minStickiness       = time.Second
	maxConditionPattern = 128
)

// fixedContentTypes are the content types ALB allows in a fixed response.
var fixedContentTypes = []string{"text/plain", "text/css", "text/html", "application/javascript", "application/json"}

// xffModes are the X-Forwarded-For modes of an http(s) listener.
var xffModes = []string{"append", "preserve", "remove"}

var (
	protocols = []string{ProtocolHTTP, ProtocolHTTPS, ProtocolTCP, ProtocolTLS, ProtocolUDP}
	// algorithms are ALB's names and source_hash; the balancer implements each.
	algorithms = []string{AlgorithmRoundRobin, "least_outstanding_requests", "weighted_random", "source_hash"}
)

// Limits of ALB that berth keeps.
const (
	maxPriority    = 50000
	maxPatternLen  = 128
	maxBodyBytes   = 1024
	maxDeregDelay  = 3600 * time.Second
	minIdleTimeout = time.Second
	// ALB's slow start window.
	minSlowStart   = 30 * time.Second
	maxSlowStart   = 900 * time.Second
	maxIdleTimeout = 4000 * time.Second
	// maxL4IdleTimeout is NLB's upper bound for TCP.
	maxL4IdleTimeout = 6000 * time.Second
	// maxConnections is about the most descriptors a process can have
	// (fs.nr_open is 1,048,576 by default).
	maxConnections = 1000000
	minResync      = time.Second
)

// checkName accepts a target group name: lower-case, as the berth.group label.
func checkName(name string) error {
	if !groupName.MatchString(name) {
		return fmt.Errorf("group name %q must start with a lower-case letter or digit, then use only a-z 0-9 . _ -", name)
	}
	return nil
}

// Validate returns every problem of c, each with its key path; nil when c is usable.
func (c *Config) Validate() Errors {
	var v validation
	v.node(c.Node)
	v.docker(c.Docker)
	v.cluster(c.Cluster)
	v.admin(c.Admin)
	v.listeners(c.Listeners)
	v.upgrade(c.Upgrade)
	for _, name := range sortedKeys(c.Groups) {
		v.group("groups."+name, name, c.Groups[name])
	}
	for _, name := range sortedKeys(c.Static) {
		v.static("static."+name, name, c.Static[name])
	}
	return v.errs
}

type validation struct{ errs Errors }

func (v *validation) add(path, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

// maxUnixPath is the room for a unix socket's path (sun_path, with its NUL).
const maxUnixPath = 107

func (v *validation) upgrade(u Upgrade) {
	switch {
	case u.Socket == "":
	case !filepath.IsAbs(u.Socket):
		v.add("upgrade.socket", "%q is not an absolute path: use one like %s, or \"\" to turn the hand-over off", u.Socket, DefaultUpgradeSocket)
	case len(u.Socket) > maxUnixPath:
		v.add("upgrade.socket", "%d bytes is longer than a unix socket's path may be (%d)", len(u.Socket), maxUnixPath)
	}
}

func (v *validation) node(n Node) {
	if n.Name == "" {
		v.add("node.name", "is empty: set a name that identifies this host")
	} else if strings.ContainsAny(n.Name, "/ \t\n") {
		v.add("node.name", "%q must not contain '/' or spaces: it is part of target IDs", n.Name)
	}
	ip := net.ParseIP(n.Advertise)
	switch {
	case ip == nil:
		v.add("node.advertise", "%q is not an IP address: set the IP other hosts reach this host on", n.Advertise)
	case ip.IsUnspecified():
		v.add("node.advertise", "%s cannot be reached by other hosts: set this host's own IP", n.Advertise)
	}
}

func (v *validation) docker(d Docker) {
	u, err := url.Parse(d.Host)
	if err != nil || !slices.Contains([]string{"unix", "tcp", "ssh", "npipe"}, u.Scheme) {
		v.add("docker.host", "%q is not a Docker address: use unix:///var/run/docker.sock, tcp://HOST:PORT or ssh://USER@HOST", d.Host)
	}
	if !labelPrefix.MatchString(d.LabelPrefix) {
		v.add("docker.label-prefix", "%q must use only a-z 0-9 . - and not start or end with . or -", d.LabelPrefix)
	}
	if d.Resync < minResync {
		v.add("docker.resync", "%s is too short: the minimum is %s", formatDuration(d.Resync), formatDuration(minResync))
	}
}

func (v *validation) cluster(c Cluster) {
	v.address("cluster.bind", c.Bind, true)
	if !c.Enabled && len(c.Join) > 0 {
		v.add("cluster.enabled", "is false (the default) but cluster.join lists agents: set cluster.enabled: true to join them")
	}
	if c.Enabled && c.SecretKeyFile == "" && !c.Insecure && !LoopbackBind(c.Bind) {
		v.add("cluster.secret-key-file", "is required: cluster.bind %s is reachable from other hosts, and without a key anyone who reaches it "+
			"can join the fleet and route this agent's listeners; make a key with `berth keygen > /etc/berth/gossip.key` (the same file on every host) "+
			"and set cluster.secret-key-file to it, or bind the cluster to 127.0.0.1 (this host only), or accept the risk with cluster.insecure: true", c.Bind)
	}
	if c.RejoinGrace < 0 || c.RejoinGrace > time.Hour {
		v.add("cluster.rejoin-grace", "%s is out of range: 0s to 1h", formatDuration(c.RejoinGrace))
	}

	for i, peer := range c.Join {
		path := fmt.Sprintf("cluster.join[%d]", i)
		host, port, err := net.SplitHostPort(peer)
		if err != nil {
			host, port = peer, ""
		}
		if host == "" || strings.ContainsAny(host, "/ ") {
			v.add(path, "%q is not a host or host:port", peer)
		} else if port != "" {
			v.port(path, port, false)
		}
	}
}

// LoopbackBind reports whether gossip bound to addr is reachable from this
// host only: a loopback IP or "localhost".
func LoopbackBind(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// address checks host:port; port 0 (pick a free port) is allowed when zeroOK.
func (v *validation) address(path, addr string, zeroOK bool) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(path, "%q is not host:port (write :80 or 0.0.0.0:80 to listen on every address)", addr)
		return
	}
	v.port(path, port, zeroOK)
}

func (v *validation) port(path, port string, zeroOK bool) {
	n, err := strconv.Atoi(port)
	low := 1
	if zeroOK {
		low = 0
	}
	if err != nil || n < low || n > 65535 {
		v.add(path, "port %q must be a number from %d to 65535", port, low)
	}
}

func (v *validation) listeners(listeners []Listener) {
	names := map[string]int{}
	addresses := map[string]string{}
	for i, l := range listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		switch {
		case l.Name == "":
			v.add(p+".name", "is required: name the listener (a-z 0-9 -)")
		case !listenerName.MatchString(l.Name):
			v.add(p+".name", "%q must use only a-z 0-9 -", l.Name)
		default:
			if first, dup := names[l.Name]; dup {
				v.add(p+".name", "%q is already the name of listeners[%d]", l.Name, first)
			} else {
				names[l.Name] = i
			}
		}
		if !slices.Contains(protocols, l.Protocol) {
			v.add(p+".protocol", "unknown protocol %q; supported: %s", l.Protocol, strings.Join(protocols, ", "))
		}
		v.listenAddress(p, l, addresses)
		maxIdle := maxIdleTimeout
		if l.Protocol != ProtocolHTTP && l.Protocol != ProtocolHTTPS {
			maxIdle = maxL4IdleTimeout
		}
		if l.IdleTimeout < minIdleTimeout || l.IdleTimeout > maxIdle {
			v.add(p+".idle-timeout", "%s is out of range: %s to %s", formatDuration(l.IdleTimeout), formatDuration(minIdleTimeout), formatDuration(maxIdle))
		}
		if l.MaxConnections < 0 || l.MaxConnections > maxConnections {
			v.add(p+".max-connections", "%d is out of range: 1..%d, or 0 for no limit", l.MaxConnections, maxConnections)
		}
		v.l4(p, l)
		priorities := map[int]int{}
		for j, r := range l.Rules {
			rp := fmt.Sprintf("%s.rules[%d]", p, j)
			v.rule(rp, r)
			if first, dup := priorities[r.Priority]; dup && r.Priority != 0 {
				v.add(rp+".priority", "%d is already the priority of %s.rules[%d]; priorities are unique per listener", r.Priority, p, first)
			} else {
				priorities[r.Priority] = j
			}
		}
		if l.Default != nil {
			v.action(p+".default", *l.Default)
		}
		v.httpPolicies(p, l)
	}
}

// httpPolicies checks xff and that no redirect turns HTTPS into HTTP.
func (v *validation) httpPolicies(p string, l Listener) {
	if l.XForwardedFor != "" && !slices.Contains(xffModes, l.XForwardedFor) {
		v.add(p+".xff", "unknown mode %q; use %s", l.XForwardedFor, strings.Join(xffModes, ", "))
	}
	if l.XForwardedFor != "" && l.Protocol != ProtocolHTTP && l.Protocol != ProtocolHTTPS {
		v.add(p+".xff", "applies to http and https listeners only")
	}
	if l.Protocol != ProtocolHTTPS {
		return
	}
	for j, r := range l.Rules {
		if r.Redirect != nil && strings.EqualFold(r.Redirect.Protocol, "http") {
			v.add(fmt.Sprintf("%s.rules[%d].redirect.protocol", p, j), "an https listener must not redirect to HTTP")
		}
	}
	if l.Default != nil && l.Default.Redirect != nil && strings.EqualFold(l.Default.Redirect.Protocol, "http") {
		v.add(p+".default.redirect.protocol", "an https listener must not redirect to HTTP")
	}
}

// conditions checks a rule's header, method, query and source-ip conditions.
func (v *validation) conditions(p string, r Rule) {
	for name, values := range r.Header {
		hp := p + ".header." + name
		if len(values) == 0 {
			v.add(hp, "list at least one value pattern (* matches any value)")
		}
		for i, val := range values {
			if val == "" || len(val) > maxConditionPattern {
				v.add(fmt.Sprintf("%s[%d]", hp, i), "must be 1..%d characters", maxConditionPattern)
			}
		}
	}
	for i, m := range r.Method {
		if !methodName.MatchString(m) {
			v.add(fmt.Sprintf("%s.method[%d]", p, i), "%q is not a method: use upper case like GET or POST (methods match case-sensitively)", m)
		}
	}
	for i, q := range r.Query {
		if q.Value == "" {
			v.add(fmt.Sprintf("%s.query[%d].value", p, i), "is required (* matches any value)")
		}
		if len(q.Key) > maxConditionPattern || len(q.Value) > maxConditionPattern {
			v.add(fmt.Sprintf("%s.query[%d]", p, i), "key and value are at most %d characters", maxConditionPattern)
		}
	}
	for i, cidr := range r.SourceIP {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			v.add(fmt.Sprintf("%s.source-ip[%d]", p, i), "%q is not a CIDR like 10.0.0.0/8 or 2001:db8::/32", cidr)
		}
	}
}

// l4 checks what the L4 protocols allow: they only forward; only tls
// listeners have rules (by SNI: host only) and certificates.
func (v *validation) l4(p string, l Listener) {
	switch {
	case len(l.Certificates) > 0 && l.Protocol != ProtocolTLS && l.Protocol != ProtocolHTTPS:
		v.add(p+".certificates", "need protocol https or tls")
	case len(l.Certificates) == 0 && l.Protocol == ProtocolHTTPS:
		v.add(p+".certificates", "an https listener needs at least one: list {cert: PATH, key: PATH}")
	}
	switch {
	case l.RedirectToHTTPS != 0 && l.Protocol != ProtocolHTTP:
		v.add(p+".redirect-to-https", "belongs on an http listener: it redirects plain HTTP to an https port")
	case l.RedirectToHTTPS < 0 || l.RedirectToHTTPS > 65535:
		v.add(p+".redirect-to-https", "%d is not a port: use 1..65535, the port of the https listener", l.RedirectToHTTPS)
	}
	for i, c := range l.Certificates {
		cp := fmt.Sprintf("%s.certificates[%d]", p, i)
		switch {
		case c.Cert == "" || c.Key == "":
			v.add(cp, "set cert and key: the paths of a PEM certificate chain and its private key")
		default:
			if _, err := tls.LoadX509KeyPair(c.Cert, c.Key); err != nil {
				v.add(cp, "cannot load %s and %s: %v", c.Cert, c.Key, err)
			}
		}
	}
	switch l.Protocol {
	case ProtocolTCP, ProtocolUDP:
		if len(l.Rules) > 0 {
			v.add(p+".rules", "a %s listener has no rules: forward everything with default", l.Protocol)
		}
	case ProtocolTLS:
		for j, r := range l.Rules {
			if len(r.Path) > 0 || len(r.Header) > 0 || len(r.Method) > 0 || len(r.Query) > 0 || len(r.SourceIP) > 0 {
				v.add(fmt.Sprintf("%s.rules[%d]", p, j), "a tls listener routes by SNI: use host only")
			}
			if r.Redirect != nil || len(r.ForwardGroups) > 0 {
				v.add(fmt.Sprintf("%s.rules[%d]", p, j), "a tls listener forwards to one group")
			}
			if r.FixedResponse != nil {
				v.add(fmt.Sprintf("%s.rules[%d].fixed-response", p, j), "a tls listener only forwards")
			}
		}
	default:
		return
	}
	if l.Default != nil && l.Default.FixedResponse != nil {
		v.add(p+".default.fixed-response", "a %s listener only forwards: set default: {forward: GROUP}", l.Protocol)
	}
}

func (v *validation) listenAddress(p string, l Listener, used map[string]string) {
	switch {
	case l.Address == "" && l.Port == 0:
		v.add(p, "has no port: set port (1..65535) or address (host:port)")
		return
	case l.Port < 0 || l.Port > 65535:
		v.add(p+".port", "%d must be from 1 to 65535", l.Port)
		return
	case l.Port != 0 && l.Address != fmt.Sprintf(":%d", l.Port):
		v.add(p+".port", "set either port or address, not both")
		return
	}
	v.address(p+".address", l.Address, true)
	if strings.HasSuffix(l.Address, ":0") {
		return
	}
	if other, dup := used[l.Address]; dup {
		v.add(p+".address", "%s is already the address of listener %q", l.Address, other)
	} else {
		used[l.Address] = l.Name
	}
}

func (v *validation) rule(p string, r Rule) {
	if r.Priority < 1 || r.Priority > maxPriority {
		v.add(p+".priority", "%d is out of range: set a priority from 1 to %d (lowest first)", r.Priority, maxPriority)
	}
	if len(r.Host) == 0 && len(r.Path) == 0 && len(r.Header) == 0 && len(r.Method) == 0 && len(r.Query) == 0 && len(r.SourceIP) == 0 {
		v.add(p, "has no condition: set host, path, header, method, query or source-ip (the listener's default handles everything else)")
	}
	for i, h := range r.Host {
		hp := fmt.Sprintf("%s.host[%d]", p, i)
		switch {
		case len(h) > maxPatternLen:
			v.add(hp, "is longer than %d characters", maxPatternLen)
		case !hostPattern.MatchString(strings.ToLower(h)):
			v.add(hp, "%q is not a host pattern: use letters, digits, . - and the wildcards * ?", h)
		}
	}
	for i, path := range r.Path {
		pp := fmt.Sprintf("%s.path[%d]", p, i)
		switch {
		case !strings.HasPrefix(path, "/"):
			v.add(pp, "%q must start with /", path)
		case len(path) > maxPatternLen:
			v.add(pp, "is longer than %d characters", maxPatternLen)
		case strings.ContainsAny(path, " \t\n#"):
			v.add(pp, "%q must not contain spaces or #", path)
		}
	}
	v.conditions(p, r)
	v.action(p, r.Action)
}

func (v *validation) action(p string, a Action) {
	set := 0
	for _, on := range []bool{a.Forward != "" || len(a.ForwardGroups) > 0, a.Redirect != nil, a.FixedResponse != nil} {
		if on {
			set++
		}
	}
	if a.ForwardStickiness != 0 && len(a.ForwardGroups) == 0 {
		v.add(p+".forward-stickiness", "needs a weighted forward: forward: [{group: a, weight: 90}, ...]")
	}
	switch {
	case set == 0:
		v.add(p, "has no action: set forward (a group or weighted groups), redirect or fixed-response")
	case set > 1:
		v.add(p, "set one of forward, redirect and fixed-response")
	case a.Forward != "":
		if err := checkName(a.Forward); err != nil {
			v.add(p+".forward", "%v", err)
		}
	case len(a.ForwardGroups) > 0:
		v.weightedForward(p+".forward", a.ForwardGroups)
		if a.ForwardStickiness != 0 && (a.ForwardStickiness < minStickiness || a.ForwardStickiness > maxStickiness) {
			v.add(p+".forward-stickiness", "%s is out of range: 1s to 7d", formatDuration(a.ForwardStickiness))
		}
	case a.Redirect != nil:
		v.redirect(p+".redirect", *a.Redirect)
	default:
		f := a.FixedResponse
		fp := p + ".fixed-response"
		if f.Status < 200 || f.Status > 599 || f.Status/100 == 3 {
			v.add(fp+".status", "%d must be a 2xx, 4xx or 5xx status (a redirect action answers 3xx)", f.Status)
		}
		if mt, _, err := mime.ParseMediaType(f.ContentType); err != nil || !slices.Contains(fixedContentTypes, mt) {
			v.add(fp+".content-type", "%q: use one of %s", f.ContentType, strings.Join(fixedContentTypes, ", "))
		}
		if len(f.Body) > maxBodyBytes {
			v.add(fp+".body", "is %d bytes; the maximum is %d", len(f.Body), maxBodyBytes)
		}
	}
}

func (v *validation) weightedForward(p string, groups []WeightedForward) {
	if len(groups) > maxForwardGroups {
		v.add(p, "lists %d groups; at most %d", len(groups), maxForwardGroups)
	}
	seen, total := map[string]bool{}, 0
	for i, g := range groups {
		gp := fmt.Sprintf("%s[%d]", p, i)
		if err := checkName(g.Group); err != nil {
			v.add(gp+".group", "%v", err)
		} else if seen[g.Group] {
			v.add(gp+".group", "%q is listed twice", g.Group)
		}
		seen[g.Group] = true
		if g.Weight < 0 || g.Weight > maxForwardWeight {
			v.add(gp+".weight", "%d is out of range: 0 to %d", g.Weight, maxForwardWeight)
		}
		total += g.Weight
	}
	if total == 0 {
		v.add(p, "every weight is 0: give at least one group a weight above 0")
	}
}

// redirect checks what ALB checks: 301 or 302, a known protocol, a port, an
// absolute path, and that the redirect changes something.
func (v *validation) redirect(p string, r Redirect) {
	if r.Status != 301 && r.Status != 302 {
		v.add(p+".status", "%d: use 301 or 302", r.Status)
	}
	proto := strings.ToLower(r.Protocol)
	if proto != "" && proto != "http" && proto != "https" && proto != "#{protocol}" {
		v.add(p+".protocol", "%q: use HTTP, HTTPS or #{protocol}", r.Protocol)
	}
	if r.Port != "" && r.Port != "#{port}" {
		if n, err := strconv.Atoi(r.Port); err != nil || n < 1 || n > 65535 {
			v.add(p+".port", "%q: use 1..65535 or #{port}", r.Port)
		}
	}
	if r.Path != "" && !strings.HasPrefix(r.Path, "/") {
		v.add(p+".path", "%q must start with /", r.Path)
	}
	same := func(value, placeholder string) bool { return value == "" || value == placeholder }
	if same(proto, "#{protocol}") && same(r.Host, "#{host}") && same(r.Port, "#{port}") && same(r.Path, "/#{path}") && same(r.Query, "#{query}") {
		v.add(p, "changes nothing and would loop: set protocol, host, port, path or query")
	}
}

func (v *validation) stickiness(p string, s Stickiness) {
	switch s.Type {
	case "lb_cookie":
		if s.Cookie != "" {
			v.add(p+".cookie", "belongs to app_cookie; lb_cookie uses the balancer's BERTHLB")
		}
	case "app_cookie":
		if s.Cookie == "" || strings.ContainsAny(s.Cookie, "=;, \t") || strings.HasPrefix(s.Cookie, "BERTH") || strings.HasPrefix(s.Cookie, "AWSALB") {
			v.add(p+".cookie", "%q: name the application's cookie (not BERTH* or AWSALB*, no = ; , or spaces)", s.Cookie)
		}
	default:
		v.add(p+".type", "%q: use lb_cookie or app_cookie", s.Type)
	}
	if s.Duration != 0 && (s.Duration < minStickiness || s.Duration > maxStickiness) {
		v.add(p+".duration", "%s is out of range: 1s to 7d", formatDuration(s.Duration))
	}
}

func (v *validation) group(p, name string, g Group) {
	if g.Stickiness != nil {
		v.stickiness(p+".stickiness", *g.Stickiness)
	}
	if err := checkName(name); err != nil {
		v.add(p, "%v", err)
	}
	if g.DeregistrationDelay < 0 || g.DeregistrationDelay > maxDeregDelay {
		v.add(p+".deregistration-delay", "%s is out of range: 0s to %s", formatDuration(g.DeregistrationDelay), formatDuration(maxDeregDelay))
	}
	if !slices.Contains(algorithms, g.Algorithm) {
		v.add(p+".algorithm", "unknown algorithm %q; use %s", g.Algorithm, strings.Join(algorithms, ", "))
	}
	if g.ConnectTimeout <= 0 {
		v.add(p+".connect-timeout", "%s must be more than 0s", formatDuration(g.ConnectTimeout))
	}
	if g.ResponseTimeout <= 0 {
		v.add(p+".response-timeout", "%s must be more than 0s", formatDuration(g.ResponseTimeout))
	}
	if g.Protocol != ProtocolHTTP && g.Protocol != ProtocolHTTPS {
		v.add(p+".protocol", "unknown protocol %q; use http or https (what http and https listeners speak to the targets)", g.Protocol)
	}
	v.health(p+".health", g.Health)
	if g.ProxyProtocol != "" && g.ProxyProtocol != "v2" {
		v.add(p+".proxy-protocol", "%q is not a proxy protocol version: use v2, or leave it out for none", g.ProxyProtocol)
	}
	if g.SlowStart != 0 {
		if g.SlowStart < minSlowStart || g.SlowStart > maxSlowStart {
			v.add(p+".slow-start", "%s is out of range: %s to %s, or 0 for none", formatDuration(g.SlowStart), formatDuration(minSlowStart), formatDuration(maxSlowStart))
		}
		if g.Algorithm == "least_outstanding_requests" || g.Algorithm == "source_hash" {
			v.add(p+".slow-start", "does not work with algorithm %s: use round_robin or weighted_random", g.Algorithm)
		}
	}
	if g.AnomalyMitigation && g.Algorithm != "weighted_random" {
		v.add(p+".anomaly-mitigation", "needs algorithm weighted_random (it is %s)", g.Algorithm)
	}
}

func (v *validation) health(p string, h Health) {
	if !slices.Contains([]string{"http", "https", "tcp"}, h.Protocol) {
		v.add(p+".protocol", "unknown protocol %q; use http, https or tcp", h.Protocol)
	}
	if !strings.HasPrefix(h.Path, "/") {
		v.add(p+".path", "%q must start with /", h.Path)
	}
	if h.Port < 0 || h.Port > 65535 {
		v.add(p+".port", "%d must be from 1 to 65535, or 0 for the target's own port", h.Port)
	}
	v.durationRange(p+".interval", h.Interval, time.Second, 300*time.Second)
	v.durationRange(p+".timeout", h.Timeout, time.Second, 120*time.Second)
	if h.Timeout >= h.Interval {
		v.add(p+".timeout", "%s must be shorter than the interval (%s)", formatDuration(h.Timeout), formatDuration(h.Interval))
	}
	v.intRange(p+".healthy", h.Healthy, 2, 10)
	v.intRange(p+".unhealthy", h.Unhealthy, 2, 10)
	if err := checkMatcher(h.Matcher); err != nil {
		v.add(p+".matcher", "%v", err)
	}
}

func (v *validation) durationRange(p string, d, low, high time.Duration) {
	if d < low || d > high {
		v.add(p, "%s is out of range: %s to %s", formatDuration(d), formatDuration(low), formatDuration(high))
	}
}

func (v *validation) intRange(p string, n, low, high int) {
	if n < low || n > high {
		v.add(p, "%d is out of range: %d to %d", n, low, high)
	}
}

// checkMatcher accepts status codes 200..499 as ALB does: "200", "200,202", "200-299".
func checkMatcher(text string) error {
	_, err := matcher.Parse(text)
	return err
}

func (v *validation) static(p, name string, targets []string) {
	if err := checkName(name); err != nil {
		v.add(p, "%v", err)
	}
	if len(targets) == 0 {
		v.add(p, "lists no target: write [host:port, ...] or remove the group")
	}
	seen := map[string]int{}
	for i, t := range targets {
		tp := fmt.Sprintf("%s[%d]", p, i)
		host, port, err := net.SplitHostPort(t)
		if err != nil || host == "" {
			v.add(tp, "%q is not host:port", t)
			continue
		}
		v.port(tp, port, false)
		if first, dup := seen[t]; dup {
			v.add(tp, "%s is already %s[%d]", t, p, first)
		} else {
			seen[t] = i
		}
	}
}

func formatDuration(d time.Duration) string {
	if d != 0 && d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
