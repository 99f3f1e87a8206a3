package docker

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-lb/berth/discovery"
	"github.com/berth-lb/berth/internal/matcher"
)

// DefaultLabelPrefix is the label prefix used when Options.LabelPrefix is empty.
const DefaultLabelPrefix = "berth"

// DefaultRuleListener is the listener a label rule joins when P.rule.listener is not set.
const DefaultRuleListener = "web"

// Label value limits. They mirror the ALB limits where one exists.
const (
	maxWeight              = 999
	maxDeregistrationDelay = 3600 * time.Second
	minRulePriority        = 1
	maxRulePriority        = 50000
	maxPatternLength       = 128
)

// algorithms are the values P.algorithm accepts.
var algorithms = []string{"round_robin", "least_outstanding_requests", "weighted_random", "source_hash"}

// protocols are the values P.protocol accepts: what the balancer speaks to
// the group's targets.
var protocols = []string{"http", "https"}

// proxyProtocols are the values P.proxy-protocol accepts.
var proxyProtocols = []string{"v2", "none"}

// booleans are the values a boolean label accepts: exactly these, so a typo
// like "yes" or "on" is an error rather than a silent false.
var booleans = []string{"true", "false"}

var (
	groupNamePattern = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,64}$`)
	// listener names follow the same shape as group names: they appear in IDs,
	// metrics and the config file.
	listenerNamePattern = groupNamePattern
	hostPatternPattern  = regexp.MustCompile(`^[a-z0-9.*?-]+$`)
)

// Spec is what a container's labels ask for.
type Spec struct {
	// Groups in label order, without duplicates; the first one receives the rule.
	Groups []string
	// Port is the container port chosen with P.port, 0 when not set, and
	// Proto its protocol: "tcp", or "udp" for P.port=N/udp (UDP listeners).
	Port  int
	Proto string
	// Weight is P.weight, 1 when not set.
	Weight int
	// Settings are the group policies (P.deregistration-delay, P.algorithm,
	// P.slow-start, P.protocol, P.proxy-protocol, P.connection-termination,
	// P.health.*, P.stickiness).
	Settings discovery.GroupSettings
	// Rule is the rule declared with P.rule.*, nil when neither host nor path
	// is set or a rule label is bad. Its Priority is 0 when P.rule.priority
	// is not set.
	Rule *discovery.Rule
	// LeftOut are the bad labels the container is registered without
	// (unregisters tells which are not forgiven), in label-name order.
	LeftOut LabelErrors
	// Ignored are the labels under the prefix that this version does not implement,
	// sorted. They are reported, not rejected, so newer labels do not break older agents.
	Ignored []string
}

// LabelError is one label whose value is not valid.
type LabelError struct {
	// Label is the full label key, e.g. "berth.weight".
	Label string
	// Value is the value found.
	Value string
	// Want says what is expected instead.
	Want string
}

// Error reads like `label berth.weight="x": want an integer from 0 to 999`.
func (e *LabelError) Error() string {
	return fmt.Sprintf("label %s=%q: want %s", e.Label, e.Value, e.Want)
}

// LabelErrors are all the bad labels of one container, in label-name order.
type LabelErrors []*LabelError

// Error joins every label error, so a user fixes all of them in one go.
func (errs LabelErrors) Error() string {
	return "docker: " + errs.reason()
}

// Unwrap lets errors.As find each *LabelError.
func (errs LabelErrors) Unwrap() []error {
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return out
}

// reason is the text shown in a Skipped entry: the errors without the component prefix.
func (errs LabelErrors) reason() string {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// leftOutReason is the text shown for a container registered without these
// labels: each error and what applies instead.
func (errs LabelErrors) leftOutReason(prefix string) string {
	parts := make([]string, len(errs))
	for i, e := range errs {
		if isRuleLabel(prefix, e.Label) {
			parts[i] = e.Error() + " (the rule is left out)"
		} else {
			parts[i] = e.Error() + " (left out: the group's default applies)"
		}
	}
	return strings.Join(parts, "; ")
}

// unregisters reports whether a bad value of the label keeps the container
// out of rotation rather than being left out. Serving without these labels
// would do what the container's owner ruled out: join no group or the wrong
// port, take a full share meant to be small or none (weight), speak plaintext
// to a target meant to get TLS (protocol), hide the client's address from a
// target that may act on it (proxy-protocol), or serve on a weaker health
// check than the one asked for (health.*). Rule labels and the other group
// policies (deregistration-delay, algorithm, slow-start, stickiness,
// connection-termination) change how traffic is spread or drained, not
// whether the target is fit for it, so they are left out instead.
func unregisters(prefix, label string) bool {
	name := strings.TrimPrefix(label, prefix+".")
	switch name {
	case "group", "port", "weight", "protocol", "proxy-protocol":
		return true
	}
	return strings.HasPrefix(name, "health.")
}

func isRuleLabel(prefix, label string) bool {
	return strings.HasPrefix(label, prefix+".rule.")
}

// labelParser collects the labels under one prefix and the errors found while reading them.
type labelParser struct {
	prefix string
	labels map[string]string
	used   map[string]bool
	errs   LabelErrors
}

func (p *labelParser) key(name string) string { return p.prefix + "." + name }

// lookup returns the value of P.name and marks it as understood.
func (p *labelParser) lookup(name string) (string, bool) {
	key := p.key(name)
	value, ok := p.labels[key]
	if ok {
		p.used[key] = true
	}
	return value, ok
}

func (p *labelParser) fail(name, value, want string) {
	p.errs = append(p.errs, &LabelError{Label: p.key(name), Value: value, Want: want})
}

// ParseLabels reads the labels under prefix ("berth" when empty). A container without
// P.group returns a zero Spec and a nil error: it is not meant for berth. A bad value
// of a label that unregisters returns LabelErrors naming every bad label, its value and
// what is expected; other bad labels are left out and listed in Spec.LeftOut.
func ParseLabels(prefix string, labels map[string]string) (Spec, error) {
	spec, errs := parseSpec(prefix, labels)
	if errs != nil {
		return Spec{}, errs
	}
	return spec, nil
}

// parseSpec is ParseLabels with the concrete error type, so a nil LabelErrors never
// turns into a non-nil error interface.
func parseSpec(prefix string, labels map[string]string) (Spec, LabelErrors) {
	if prefix == "" {
		prefix = DefaultLabelPrefix
	}
	p := &labelParser{prefix: prefix, labels: labels, used: map[string]bool{}}
	rawGroups, ok := p.lookup("group")
	if !ok {
		return Spec{}, nil
	}
	spec := Spec{
		Groups: p.groups(rawGroups),
		Weight: p.weight(),
		Settings: discovery.GroupSettings{
			DeregistrationDelay:   p.deregistrationDelay(),
			Algorithm:             p.oneOf("algorithm", algorithms),
			SlowStart:             p.durationLabel("slow-start", 30*time.Second, 900*time.Second),
			Health:                p.health(),
			Stickiness:            p.stickiness(),
			Protocol:              p.oneOf("protocol", protocols),
			ProxyProtocol:         p.proxyProtocol(),
			ConnectionTermination: p.oneOf("connection-termination", booleans) == "true",
		},
	}
	spec.Port, spec.Proto = p.port()
	spec.Rule = p.rule(spec.Groups)
	for key := range labels {
		if strings.HasPrefix(key, prefix+".") && !p.used[key] {
			spec.Ignored = append(spec.Ignored, key)
		}
	}
	sort.Strings(spec.Ignored)
	if len(p.errs) == 0 {
		return spec, nil
	}
	sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Label < p.errs[j].Label })
	if slices.ContainsFunc(p.errs, func(e *LabelError) bool { return unregisters(prefix, e.Label) }) {
		return Spec{}, p.errs
	}
	if slices.ContainsFunc(p.errs, func(e *LabelError) bool { return isRuleLabel(prefix, e.Label) }) {
		spec.Rule = nil
	}
	spec.LeftOut = p.errs
	return spec, nil
}

func (p *labelParser) groups(raw string) []string {
	var groups []string
	for _, name := range strings.Split(raw, ",") {
		name = strings.TrimSpace(name)
		if !groupNamePattern.MatchString(name) {
			p.fail("group", raw, "comma-separated group names of 1 to 64 characters from a-z A-Z 0-9 . _ - (e.g. "+p.key("group")+"=web,api)")
			return nil
		}
		if !slices.Contains(groups, name) {
			groups = append(groups, name)
		}
	}
	return groups
}

func (p *labelParser) port() (int, string) {
	raw, ok := p.lookup("port")
	if !ok {
		return 0, "tcp"
	}
	number, proto, hasProto := strings.Cut(strings.TrimSpace(raw), "/")
	if !hasProto {
		proto = "tcp"
	}
	port, err := strconv.Atoi(number)
	if err != nil || port < 1 || port > 65535 || (proto != "tcp" && proto != "udp") {
		p.fail("port", raw, "the container port to route to, 1 to 65535, optionally with /tcp or /udp (e.g. "+p.key("port")+"=8080, "+p.key("port")+"=5353/udp)")
		return 0, "tcp"
	}
	return port, proto
}

func (p *labelParser) weight() int {
	raw, ok := p.lookup("weight")
	if !ok {
		return 1
	}
	weight, err := strconv.Atoi(strings.TrimSpace(raw))
	if err != nil || weight < 0 || weight > maxWeight {
		p.fail("weight", raw, fmt.Sprintf("an integer from 0 to %d (0: no new traffic; default 1)", maxWeight))
		return 0
	}
	return weight
}

func (p *labelParser) deregistrationDelay() *time.Duration {
	raw, ok := p.lookup("deregistration-delay")
	if !ok {
		return nil
	}
	delay, err := time.ParseDuration(strings.TrimSpace(raw))
	if err != nil || delay < 0 || delay > maxDeregistrationDelay {
		p.fail("deregistration-delay", raw, "a duration from 0s to 3600s (e.g. 30s, 5m)")
		return nil
	}
	return &delay
}

// oneOf reads P.name, which must be one of values; "" when not set.
func (p *labelParser) oneOf(name string, values []string) string {
	raw, ok := p.lookup(name)
	if !ok {
		return ""
	}
	value := strings.TrimSpace(raw)
	if !slices.Contains(values, value) {
		p.fail(name, raw, "one of "+strings.Join(values, ", "))
		return ""
	}
	return value
}

// proxyProtocol reads P.proxy-protocol: "v2", or "" for none and unset alike,
// off being the default, so that containers saying either agree.
func (p *labelParser) proxyProtocol() string {
	if v := p.oneOf("proxy-protocol", proxyProtocols); v != "none" {
		return v
	}
	return ""
}

// health reads the P.health.* labels: the group's active health check.
func (p *labelParser) health() discovery.HealthSettings {
	var h discovery.HealthSettings
	if raw, ok := p.lookup("health.path"); ok {
		if path := strings.TrimSpace(raw); validPath(path) {
			h.Path = path
		} else {
			p.fail("health.path", raw, "a path starting with / (e.g. /health)")
		}
	}
	h.Protocol = p.oneOf("health.protocol", healthProtocols)
	h.Port = p.intLabel("health.port", 1, 65535, "the port to check, 1 to 65535 (default: the traffic port)")
	h.Interval = p.durationLabel("health.interval", time.Second, 300*time.Second)
	h.Timeout = p.durationLabel("health.timeout", time.Second, 120*time.Second)
	h.Healthy = p.intLabel("health.healthy", 2, 10, "consecutive passes to turn healthy, 2 to 10")
	h.Unhealthy = p.intLabel("health.unhealthy", 2, 10, "consecutive failures to turn unhealthy, 2 to 10")
	if raw, ok := p.lookup("health.matcher"); ok {
		if _, err := matcher.Parse(raw); err != nil {
			p.fail("health.matcher", raw, `status codes like "200", "200,202" or "200-299"`)
		} else {
			h.Matcher = strings.TrimSpace(raw)
		}
	}
	return h
}

// healthProtocols are the values P.health.protocol accepts.
var healthProtocols = []string{"http", "https", "tcp"}

func (p *labelParser) intLabel(name string, low, high int, want string) int {
	raw, ok := p.lookup(name)
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(raw))
	if err != nil || n < low || n > high {
		p.fail(name, raw, want)
		return 0
	}
	return n
}

func (p *labelParser) durationLabel(name string, low, high time.Duration) time.Duration {
	raw, ok := p.lookup(name)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(strings.TrimSpace(raw))
	if err != nil || d < low || d > high {
		p.fail(name, raw, fmt.Sprintf("a duration from %s to %s (e.g. 10s)", low, high))
		return 0
	}
	return d
}

// stickiness reads P.stickiness (lb_cookie or app_cookie:NAME) and
// P.stickiness.duration (1s to 7d, also in days like 1d).
func (p *labelParser) stickiness() discovery.StickinessSettings {
	var s discovery.StickinessSettings
	raw, ok := p.lookup("stickiness")
	rawDuration, hasDuration := p.lookup("stickiness.duration")
	if !ok {
		if hasDuration {
			p.fail("stickiness.duration", rawDuration, p.key("stickiness")+" beside it: lb_cookie or app_cookie:NAME")
		}
		return s
	}
	kind, cookie, hasCookie := strings.Cut(strings.TrimSpace(raw), ":")
	switch {
	case kind == "lb_cookie" && !hasCookie:
	case kind == "app_cookie" && stickyCookieName.MatchString(cookie) && !strings.HasPrefix(cookie, "BERTH") && !strings.HasPrefix(cookie, "AWSALB"):
	default:
		p.fail("stickiness", raw, "lb_cookie or app_cookie:NAME with the application's cookie name (not BERTH* or AWSALB*)")
		return s
	}
	s.Type, s.Cookie = kind, cookie
	if hasDuration {
		// A bad duration is left out: the default lifetime applies.
		if d, err := parseDays(strings.TrimSpace(rawDuration)); err != nil || d < time.Second || d > 7*24*time.Hour {
			p.fail("stickiness.duration", rawDuration, "a duration from 1s to 7d (e.g. 1d or 12h)")
		} else {
			s.Duration = d
		}
	}
	return s
}

// stickyCookieName is a cookie name an app_cookie label may give.
var stickyCookieName = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]{1,64}$`)

// parseDays is time.ParseDuration that also takes whole days ("7d").
func parseDays(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 365 {
			return 0, fmt.Errorf("bad number of days %q", days)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// rule reads P.rule.*. Priority and listener alone declare nothing, so they are an
// error: the user most likely forgot the host or path.
func (p *labelParser) rule(groups []string) *discovery.Rule {
	rawHosts, hasHosts := p.lookup("rule.host")
	rawPaths, hasPaths := p.lookup("rule.path")
	rawPriority, hasPriority := p.lookup("rule.priority")
	rawListener, hasListener := p.lookup("rule.listener")
	if !hasHosts && !hasPaths {
		for _, name := range p.ruleConditionLabels() {
			p.fail(name, p.labels[p.key(name)], p.key("rule.host")+" or "+p.key("rule.path")+" beside it: the other conditions refine a host or path rule")
		}
		if hasPriority {
			p.fail("rule.priority", rawPriority, p.key("rule.host")+" or "+p.key("rule.path")+" beside it: a rule needs a condition")
		}
		if hasListener {
			p.fail("rule.listener", rawListener, p.key("rule.host")+" or "+p.key("rule.path")+" beside it: a rule needs a condition")
		}
		return nil
	}
	rule := &discovery.Rule{Listener: DefaultRuleListener}
	if len(groups) > 0 {
		rule.Group = groups[0]
	}
	if hasHosts {
		rule.Hosts = p.patterns("rule.host", rawHosts, validHostPattern, "comma-separated host names, * and ? allowed, up to 128 characters each (e.g. api.example.com,*.example.org)", strings.ToLower)
	}
	if hasPaths {
		rule.Paths = p.patterns("rule.path", rawPaths, validPath, "comma-separated paths starting with /, * and ? allowed, up to 128 characters each (e.g. /api/*,/health)", nil)
	}
	p.ruleConditions(rule)
	// Without a priority the rule keeps 0: the agent orders it after every
	// numbered rule, by specificity (docs/labels.md).
	if hasPriority {
		if priority, err := strconv.Atoi(strings.TrimSpace(rawPriority)); err != nil || priority < minRulePriority || priority > maxRulePriority {
			p.fail("rule.priority", rawPriority, fmt.Sprintf("an integer from %d to %d (lowest is evaluated first), or no %s label to place the rule after the numbered ones", minRulePriority, maxRulePriority, p.key("rule.priority")))
		} else {
			rule.Priority = priority
		}
	}
	if hasListener {
		listener := strings.TrimSpace(rawListener)
		if !listenerNamePattern.MatchString(listener) {
			p.fail("rule.listener", rawListener, "a listener name of 1 to 64 characters from a-z A-Z 0-9 . _ - (default "+DefaultRuleListener+")")
		} else {
			rule.Listener = listener
		}
	}
	return rule
}

// patterns splits a comma-separated list; normalize (may be nil) runs before validation.
func (p *labelParser) patterns(name, raw string, valid func(string) bool, want string, normalize func(string) string) []string {
	var out []string
	for _, pattern := range strings.Split(raw, ",") {
		pattern = strings.TrimSpace(pattern)
		if normalize != nil {
			pattern = normalize(pattern)
		}
		if !valid(pattern) {
			p.fail(name, raw, want)
			return nil
		}
		if !slices.Contains(out, pattern) {
			out = append(out, pattern)
		}
	}
	return out
}

// ruleConditionLabels are the P.rule.method, P.rule.source-ip, P.rule.query
// and P.rule.header.NAME labels present, sorted, marked as read.
func (p *labelParser) ruleConditionLabels() []string {
	var names []string
	for _, name := range []string{"rule.method", "rule.source-ip", "rule.query"} {
		if _, ok := p.lookup(name); ok {
			names = append(names, name)
		}
	}
	headerPrefix := p.key("rule.header.")
	for key := range p.labels {
		if strings.HasPrefix(key, headerPrefix) {
			p.used[key] = true
			names = append(names, strings.TrimPrefix(key, p.prefix+"."))
		}
	}
	sort.Strings(names)
	return names
}

// ruleConditions reads the conditions beside host and path, with ALB's
// semantics (docs/config.md, rules): methods exact, header and query values
// case-insensitive patterns, source IPs as CIDRs.
func (p *labelParser) ruleConditions(rule *discovery.Rule) {
	for _, name := range p.ruleConditionLabels() {
		raw := p.labels[p.key(name)]
		switch {
		case name == "rule.method":
			rule.Methods = p.patterns(name, raw, methodPattern.MatchString, "comma-separated methods in upper case, matched exactly (e.g. GET,POST)", nil)
		case name == "rule.source-ip":
			rule.SourceIPs = p.patterns(name, raw, validCIDR, "comma-separated CIDRs of the client's address (e.g. 10.0.0.0/8,2001:db8::/32)", nil)
		case name == "rule.query":
			for _, pair := range p.patterns(name, raw, validQueryPair, "comma-separated key=value patterns or values, * and ? allowed (e.g. version=v2,debug)", nil) {
				key, value, hasKey := strings.Cut(pair, "=")
				if !hasKey {
					key, value = "", pair
				}
				rule.Queries = append(rule.Queries, discovery.QueryPattern{Key: key, Value: value})
			}
		default: // rule.header.NAME
			header := strings.TrimPrefix(name, "rule.header.")
			if !headerNamePattern.MatchString(header) {
				p.fail(name, raw, "a header name of letters, digits, - and _ after "+p.key("rule.header.")+" (no wildcard)")
				continue
			}
			values := p.patterns(name, raw, validHeaderValue, "comma-separated value patterns, * and ? allowed, up to 128 characters each", nil)
			if len(values) > 0 {
				if rule.Headers == nil {
					rule.Headers = map[string][]string{}
				}
				rule.Headers[header] = values
			}
		}
	}
}

var (
	methodPattern     = regexp.MustCompile(`^[A-Z_-]{1,40}$`)
	headerNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}$`)
)

func validCIDR(s string) bool {
	_, err := netip.ParsePrefix(s)
	return err == nil
}

func validQueryPair(s string) bool {
	key, value, hasKey := strings.Cut(s, "=")
	if !hasKey {
		value = key
	}
	return value != "" && len(s) <= maxPatternLength && !strings.ContainsAny(s, "&#")
}

func validHeaderValue(s string) bool {
	return len(s) <= maxPatternLength && !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
}

func validHostPattern(host string) bool {
	return len(host) <= maxPatternLength && hostPatternPattern.MatchString(host)
}

func validPath(path string) bool {
	return strings.HasPrefix(path, "/") && len(path) <= maxPatternLength &&
		!strings.ContainsFunc(path, func(r rune) bool { return r <= ' ' || r == 0x7f })
}
