// Package config loads the agent's configuration: a YAML file, BERTH_* environment
// variables and command-line flags layered with viper's precedence
// (flags > env > file > defaults), checked so that every problem is reported with
// the key path it belongs to. docs/config.md is the reference for every key.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Config is the agent's whole configuration after defaults, env and flags are applied.
type Config struct {
	Node      Node                `mapstructure:"node"`
	Docker    Docker              `mapstructure:"docker"`
	Cluster   Cluster             `mapstructure:"cluster"`
	Admin     Admin               `mapstructure:"admin"`
	Log       Log                 `mapstructure:"log"`
	Upgrade   Upgrade             `mapstructure:"upgrade"`
	Listeners []Listener          `mapstructure:"listeners"`
	Groups    map[string]Group    `mapstructure:"groups"`
	Static    map[string][]string `mapstructure:"static"`
}

// Node identifies this host in the fleet.
type Node struct {
	// Name is the node part of every target ID; default: the hostname.
	Name string `mapstructure:"name"`
	// Advertise is the IP other hosts use to reach this host's targets; default: the
	// address of the interface of the default route.
	Advertise string `mapstructure:"advertise"`
}

// Docker is how the agent reaches the local Docker engine.
type Docker struct {
	Host        string        `mapstructure:"host"`
	LabelPrefix string        `mapstructure:"label-prefix"`
	Resync      time.Duration `mapstructure:"resync"`
	// Enabled is false on hosts without Docker (static targets only).
	Enabled bool `mapstructure:"enabled"`
}

// Cluster is the fleet: agents share their targets with hashicorp/memberlist.
type Cluster struct {
	// Enabled turns the fleet on; off by default, an agent serves its own host alone.
	Enabled bool `mapstructure:"enabled"`
	// Bind is ip:port for gossip over UDP and TCP; others reach it at node.advertise and this port.
	Bind string `mapstructure:"bind"`
	// Join lists host:port (port default 7946) of agents to join, retried in the background.
	Join []string `mapstructure:"join"`
	// SecretKeyFile holds base64 keys, one per line, the first used to encrypt.
	SecretKeyFile string `mapstructure:"secret-key-file"`
	// Label separates clusters on one network.
	Label string `mapstructure:"label"`
	// RejoinGrace keeps the targets of an agent that left gracefully routable
	// this long: an agent restarting while its containers keep running.
	RejoinGrace time.Duration `mapstructure:"rejoin-grace"`
	// Insecure lets gossip beyond loopback run without a key: anyone who
	// reaches the port can then join and route this agent's listeners.
	Insecure bool `mapstructure:"insecure"`
}

// Admin is the admin API listener and who may use it (docs/api.md, "Access").
type Admin struct {
	Listen string `mapstructure:"listen"`
	// TokenFile holds the bearer token every call but /healthz must send; empty:
	// no token, which Validate allows on a loopback listen address only.
	TokenFile string `mapstructure:"token-file"`
	// MetricsPublic lets /metrics answer without the token, for a scraper that
	// cannot send one.
	MetricsPublic bool `mapstructure:"metrics-public"`
	// Insecure allows a listen address beyond loopback without a token.
	Insecure bool `mapstructure:"insecure"`
	// AllowedHosts are the names, besides loopback and the listen address, that
	// a request's Host header may carry (a DNS name the admin API is reached by).
	AllowedHosts []string `mapstructure:"allowed-hosts"`
}

// Upgrade is how a new agent takes over from the running one without a
// request lost (docs/rollout.md, "Upgrading the agent").
type Upgrade struct {
	// Socket is the unix control socket on which the running agent hands its
	// listening sockets to a new agent of the same node; "" turns the
	// hand-over off (a second agent then fails to bind the ports).
	Socket string `mapstructure:"socket"`
}

// Log is where the agent writes what is not its own diagnostics.
type Log struct {
	// Access is where L4 listeners write one JSON line per connection or UDP
	// flow: stdout, off, or a file path (appended to).
	Access string `mapstructure:"access"`
}

// Listener is one port the balancer serves.
type Listener struct {
	Name     string `mapstructure:"name"`
	Protocol string `mapstructure:"protocol"`
	// Address is host:port to listen on. Load sets it to ":<port>" when only Port is
	// given, so the balancer needs to read Address alone.
	Address     string        `mapstructure:"address"`
	Port        int           `mapstructure:"port"`
	IdleTimeout time.Duration `mapstructure:"idle-timeout"`
	// Certificates are an https listener's (chosen by SNI), and make a tls
	// listener terminate TLS; without them it passes TLS through to the
	// targets, routed by SNI.
	Certificates []Certificate `mapstructure:"certificates"`
	// XForwardedFor is append (default), preserve or remove.
	XForwardedFor string `mapstructure:"xff"`
	// RedirectToHTTPS, on an http listener, answers every request with a 301
	// to https on this port; 0 is off.
	RedirectToHTTPS int `mapstructure:"redirect-to-https"`
	// MaxConnections bounds the client connections open at once (udp: the
	// flows); the excess is reset at accept and counted. 0 is no limit.
	MaxConnections int    `mapstructure:"max-connections"`
	Rules          []Rule `mapstructure:"rules"`
	// Default is the action when no rule matches; nil answers 404.
	Default *Action `mapstructure:"default"`
}

// Certificate is a PEM certificate chain and its private key, by file.
type Certificate struct {
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
}

// Rule routes the requests that match all its conditions; within a condition any
// value matches.
type Rule struct {
	Priority int `mapstructure:"priority"`
	// Host holds host patterns (case-insensitive, lower-cased by Load; * and ?).
	Host []string `mapstructure:"host"`
	// Path holds path patterns (case-sensitive, start with "/"; * and ?).
	Path []string `mapstructure:"path"`
	// Header maps a header name (case-insensitive, no wildcard) to value
	// patterns (case-insensitive; * and ?); every named header must match.
	Header HeaderConditions `mapstructure:"header"`
	// Method holds request methods, exact and case-sensitive.
	Method []string `mapstructure:"method"`
	// Query holds key/value patterns of the query string (case-insensitive;
	// * and ?); a missing key matches any key.
	Query []QueryCondition `mapstructure:"query"`
	// SourceIP holds CIDRs the client's TCP address must be in.
	SourceIP []string `mapstructure:"source-ip"`
	Action   `mapstructure:",squash"`
}

// HeaderConditions maps header names to value patterns.
type HeaderConditions map[string][]string

// QueryCondition is one key/value pattern of a query condition.
type QueryCondition struct {
	Key   string `mapstructure:"key"`
	Value string `mapstructure:"value"`
}

// Action is what a rule or a listener's default does: exactly one field is set.
type Action struct {
	// Forward names the target group to send the request to.
	Forward string `mapstructure:"forward"`
	// ForwardGroups is forward written as a list of weighted groups; the file
	// spells it forward: [{group: a, weight: 90}, ...].
	ForwardGroups []WeightedForward `mapstructure:"forward-groups"`
	// ForwardStickiness keeps a client on the group of a weighted forward it
	// was first sent to, for this long (1s..7d); 0 is off.
	ForwardStickiness time.Duration  `mapstructure:"forward-stickiness"`
	Redirect          *Redirect      `mapstructure:"redirect"`
	FixedResponse     *FixedResponse `mapstructure:"fixed-response"`
}

// WeightedForward is one group of a weighted forward.
type WeightedForward struct {
	Group  string `mapstructure:"group"`
	Weight int    `mapstructure:"weight"`
}

// Redirect answers with a 301 or 302 to a URL built from the request's parts;
// each part may use #{protocol}, #{host}, #{port}, #{path} and #{query}.
type Redirect struct {
	Status   int    `mapstructure:"status"`
	Protocol string `mapstructure:"protocol"`
	Host     string `mapstructure:"host"`
	Port     string `mapstructure:"port"`
	Path     string `mapstructure:"path"`
	Query    string `mapstructure:"query"`
}

// FixedResponse answers the request from the balancer itself.
type FixedResponse struct {
	Status      int    `mapstructure:"status"`
	ContentType string `mapstructure:"content-type"`
	Body        string `mapstructure:"body"`
}

// Group holds the policies of one target group.
type Group struct {
	DeregistrationDelay time.Duration `mapstructure:"deregistration-delay"`
	Algorithm           string        `mapstructure:"algorithm"`
	ConnectTimeout      time.Duration `mapstructure:"connect-timeout"`
	ResponseTimeout     time.Duration `mapstructure:"response-timeout"`
	// Health is the group's active health check, run by each target's own agent.
	Health Health `mapstructure:"health"`
	// ProxyProtocol is "v2" to open every L4 connection to a target with a
	// proxy protocol v2 header, or "" for none.
	ProxyProtocol string `mapstructure:"proxy-protocol"`
	// ConnectionTermination closes a draining target's open connections when
	// its deregistration delay ends (NLB's connection_termination).
	ConnectionTermination bool `mapstructure:"connection-termination"`
	// SlowStart ramps a new target's share of requests from 0 to its full
	// weight over this window (30s..900s; 0 is off).
	SlowStart time.Duration `mapstructure:"slow-start"`
	// AnomalyMitigation makes weighted_random send less to targets whose
	// recent answers were 5xx or failed connects.
	AnomalyMitigation bool `mapstructure:"anomaly-mitigation"`
	// Stickiness keeps a client on one target by a cookie; nil: none.
	Stickiness *Stickiness `mapstructure:"stickiness"`
	// Protocol is what http and https listeners speak to the targets: http,
	// or https (TLS, certificate not verified, as ALB). The health check
	// follows it unless health.protocol is set. L4 listeners ignore it.
	Protocol string `mapstructure:"protocol"`
}

// Stickiness is a group's cookie stickiness, as on ALB.
type Stickiness struct {
	// Type is lb_cookie (the balancer's cookie BERTHLB) or app_cookie
	// (BERTHAPP, while the application's Cookie is set).
	Type string `mapstructure:"type"`
	// Cookie is the application's cookie name, for app_cookie.
	Cookie string `mapstructure:"cookie"`
	// Duration of the balancer's cookie: 1s..7d, default 1d.
	Duration time.Duration `mapstructure:"duration"`
}

// Health is a group's active health check, with the meaning of an ALB target
// group's (berth allows intervals and timeouts down to 1s).
type Health struct {
	// Enabled is false to route to every target without checking it
	// (Docker's HEALTHCHECK still counts).
	Enabled bool `mapstructure:"enabled"`
	// Protocol is http (GET Path, pass on Matcher), https (the same over TLS,
	// certificate not verified) or tcp (a connection that opens passes).
	Protocol string `mapstructure:"protocol"`
	Path     string `mapstructure:"path"`
	// Port is the port to check; 0 means the target's own (traffic) port.
	Port      int           `mapstructure:"port"`
	Interval  time.Duration `mapstructure:"interval"`
	Timeout   time.Duration `mapstructure:"timeout"`
	Healthy   int           `mapstructure:"healthy"`
	Unhealthy int           `mapstructure:"unhealthy"`
	// Matcher lists the passing status codes: "200", "200,202", "200-299".
	Matcher string `mapstructure:"matcher"`
}

// DefaultHealth is the health check of a group that does not configure one (ALB defaults).
func DefaultHealth() Health {
	return Health{Enabled: true, Protocol: "http", Path: "/", Interval: 30 * time.Second, Timeout: 5 * time.Second, Healthy: 5, Unhealthy: 2, Matcher: "200"}
}

// HealthProtocol is the health check protocol of a group that speaks
// protocol to its targets and sets none for its check: the same, as on ALB.
func HealthProtocol(protocol string) string {
	if protocol == ProtocolHTTPS {
		return ProtocolHTTPS
	}
	return DefaultHealth().Protocol
}

// DefaultGroup is the policy of a group the file does not configure, e.g. one known
// only from container labels or static targets.
func DefaultGroup() Group {
	return Group{
		DeregistrationDelay: 300 * time.Second,
		Algorithm:           AlgorithmRoundRobin,
		ConnectTimeout:      10 * time.Second,
		ResponseTimeout:     60 * time.Second,
		Health:              DefaultHealth(),
		Protocol:            ProtocolHTTP,
	}
}

// Values the balancer supports today; the others of the design are refused by Validate.
const (
	ProtocolHTTP        = "http"
	ProtocolHTTPS       = "https"
	ProtocolTCP         = "tcp"
	ProtocolTLS         = "tls"
	ProtocolUDP         = "udp"
	AlgorithmRoundRobin = "round_robin"
	defaultIdleTimeout  = 60 * time.Second
	// NLB's idle timeouts.
	defaultTCPIdleTimeout = 350 * time.Second
	defaultUDPIdleTimeout = 120 * time.Second
	// defaultMaxConnections and defaultMaxUDPFlows are the balancer's
	// (balancer.DefaultMaxConnections, DefaultMaxUDPFlows): docs/config.md says why.
	defaultMaxConnections = 10000
	defaultMaxUDPFlows    = 65536
	defaultContentType    = "text/plain"
)

// keyDelimiter separates viper's key levels. It is not "." so that group names such as
// "api.v1" stay one key instead of being split into nested maps.
const keyDelimiter = "::"

// setting is one scalar key that env and flags can override.
type setting struct {
	path  string // dotted key path, as in docs and error messages
	usage string // flag help; empty when the key has no flag
}

// overridable lists every key that BERTH_* env can set; the others live in lists or
// maps keyed by user names, which env cannot address.
var overridable = []setting{
	{"node.name", "node name, the node part of every target ID (default: the hostname)"},
	{"node.advertise", "IP other hosts use to reach this host's targets (default: the address of the default route's interface)"},
	{"docker.host", "Docker engine address (default unix:///var/run/docker.sock)"},
	{"docker.label-prefix", "prefix of the container labels berth reads (default berth)"},
	{"docker.resync", ""},
	{"docker.enabled", ""},
	{"cluster.enabled", ""},
	{"cluster.bind", ""},
	{"cluster.join", ""},
	{"cluster.secret-key-file", ""},
	{"cluster.label", ""},
	{"cluster.rejoin-grace", ""},
	{"cluster.insecure", ""},
	{"admin.listen", "address of the admin API (default 127.0.0.1:9900)"},
	{"admin.token-file", ""},
	{"admin.metrics-public", ""},
	{"admin.insecure", ""},
	{"admin.allowed-hosts", ""},
	{"log.access", ""},
	{"upgrade.socket", ""},
}

// DefaultUpgradeSocket is upgrade.socket's default: /run is a tmpfs, so a
// socket left by a crash goes with a reboot.
const DefaultUpgradeSocket = "/run/berth/upgrade.sock"

// EnvName is the environment variable that overrides the dotted key path.
func EnvName(path string) string {
	return "BERTH_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(path))
}

// BindFlags registers the flags that override the config file: --node.name,
// --node.advertise, --docker.host, --docker.label-prefix and --admin.listen.
func BindFlags(fs *pflag.FlagSet) {
	for _, s := range overridable {
		if s.usage != "" {
			fs.String(s.path, "", s.usage)
		}
	}
}

func viperKey(path string) string { return strings.ReplaceAll(path, ".", keyDelimiter) }

// defaults returns the value of every overridable key when nothing sets it.
func defaults() map[string]any {
	name, err := os.Hostname()
	if err != nil || name == "" {
		name = "localhost"
	}
	return map[string]any{
		"node.name":               name,
		"node.advertise":          defaultAdvertise(),
		"docker.host":             "unix:///var/run/docker.sock",
		"docker.label-prefix":     "berth",
		"docker.resync":           30 * time.Second,
		"docker.enabled":          true,
		"cluster.enabled":         false,
		"cluster.bind":            "0.0.0.0:7946",
		"cluster.join":            []string{},
		"cluster.secret-key-file": "",
		"cluster.label":           "",
		"cluster.rejoin-grace":    60 * time.Second,
		"cluster.insecure":        false,
		"admin.listen":            "127.0.0.1:9900",
		"admin.token-file":        "",
		"admin.metrics-public":    false,
		"admin.insecure":          false,
		"admin.allowed-hosts":     []string{},
		"log.access":              "off",
		"upgrade.socket":          DefaultUpgradeSocket,
	}
}

// Load reads the file at path (none when path is ""), BERTH_* env and flags (may be
// nil), applies defaults and validates. When the configuration is wrong the error is
// an *Errors listing every problem.
func Load(path string, flags *pflag.FlagSet) (*Config, error) {
	var fileMap map[string]any
	var file *fileInfo
	var errs Errors
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		fileMap, file, errs = parseFile(data)
	}

	v := viper.NewWithOptions(viper.KeyDelimiter(keyDelimiter))
	v.SetEnvPrefix("berth")
	v.SetEnvKeyReplacer(strings.NewReplacer(keyDelimiter, "_", "-", "_"))
	defs := defaults()
	for _, s := range overridable {
		key := viperKey(s.path)
		v.SetDefault(key, defs[s.path])
		if err := v.BindEnv(key); err != nil {
			return nil, fmt.Errorf("config: bind env for %s: %w", s.path, err)
		}
		if flags == nil {
			continue
		}
		if f := flags.Lookup(s.path); f != nil {
			if err := v.BindPFlag(key, f); err != nil {
				return nil, fmt.Errorf("config: bind flag --%s: %w", s.path, err)
			}
		}
	}
	if fileMap != nil {
		if err := v.MergeConfigMap(fileMap); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	errs = append(errs, checkOverrides(v, flags, defs)...)

	var cfg Config
	hook := viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(durationHook, boolHook, commaListHook))
	if err := v.Unmarshal(&cfg, hook); err != nil {
		// parseFile and checkOverrides already reject every ill-typed value, so this
		// is a bug in berth rather than in the file.
		return nil, fmt.Errorf("config: decode: %w", err)
	}
	applyDefaults(&cfg, file)
	errs = append(errs, withoutEchoes(cfg.Validate(), errs)...)
	if len(errs) > 0 {
		errs.locate(file, flags)
		errs.sort()
		return nil, &errs
	}
	return &cfg, nil
}

// checkOverrides rejects env and flag values of the wrong type, naming the variable,
// and puts the default back so the rest of the configuration can still be checked.
func checkOverrides(v *viper.Viper, flags *pflag.FlagSet, defs map[string]any) Errors {
	var errs Errors
	for _, s := range overridable {
		key := viperKey(s.path)
		raw, isString := v.Get(key).(string)
		if !isString {
			continue
		}
		var err error
		switch defs[s.path].(type) {
		case time.Duration:
			_, err = parseDuration(raw)
		case bool:
			_, err = parseBool(raw)
		}
		if err == nil {
			continue
		}
		source := EnvName(s.path)
		if flags != nil && flags.Changed(s.path) {
			source = "--" + s.path
		}
		errs = append(errs, FieldError{Path: s.path, Message: fmt.Sprintf("%v (set by %s)", err, source)})
		v.Set(key, defs[s.path])
	}
	return errs
}

// withoutEchoes drops the problems that only repeat an earlier one: a value refused
// while parsing is left unset, and "listeners[0]: has no port" after
// "listeners[0].port: must be a whole number" would send the reader after a ghost.
// An echo is on the same path, on the parent of the earlier problem, or anywhere
// inside a value refused as a whole.
func withoutEchoes(found, earlier Errors) Errors {
	var kept Errors
	for _, e := range found {
		echo := false
		for _, prior := range earlier {
			rest, isChild := strings.CutPrefix(prior.Path, e.Path+".")
			inside := prior.Path != "" && (strings.HasPrefix(e.Path, prior.Path+".") || strings.HasPrefix(e.Path, prior.Path+"["))
			if prior.Path == e.Path || (isChild && !strings.ContainsAny(rest, ".[")) || inside {
				echo = true
				break
			}
		}
		if !echo {
			kept = append(kept, e)
		}
	}
	return kept
}

// applyDefaults fills the settings of list and map elements the file left out. Which
// ones were left out comes from the file, because zero can be a chosen value
// (deregistration-delay: 0).
func applyDefaults(c *Config, file *fileInfo) {
	set := func(path string) bool { return file != nil && file.has(path) }
	for i := range c.Listeners {
		l := &c.Listeners[i]
		p := fmt.Sprintf("listeners[%d]", i)
		if !set(p + ".protocol") {
			l.Protocol = ProtocolHTTP
		}
		if !set(p + ".idle-timeout") {
			switch l.Protocol {
			case ProtocolTCP, ProtocolTLS:
				l.IdleTimeout = defaultTCPIdleTimeout
			case ProtocolUDP:
				l.IdleTimeout = defaultUDPIdleTimeout
			default:
				l.IdleTimeout = defaultIdleTimeout
			}
		}
		if !set(p + ".max-connections") {
			l.MaxConnections = defaultMaxConnections
			if l.Protocol == ProtocolUDP {
				l.MaxConnections = defaultMaxUDPFlows
			}
		}
		if l.Address == "" && l.Port != 0 {
			l.Address = fmt.Sprintf(":%d", l.Port)
		}
		for j := range l.Rules {
			r := &l.Rules[j]
			for k, h := range r.Host {
				r.Host[k] = strings.ToLower(h)
			}
			defaultAction(&r.Action, set, fmt.Sprintf("%s.rules[%d]", p, j))
		}
		if l.Default != nil {
			defaultAction(l.Default, set, p+".default")
		}
	}
	for name, g := range c.Groups {
		p := "groups." + name
		d := DefaultGroup()
		fill := func(key string, field any, value any) {
			if !set(p + "." + key) {
				reflect.ValueOf(field).Elem().Set(reflect.ValueOf(value))
			}
		}
		fill("deregistration-delay", &g.DeregistrationDelay, d.DeregistrationDelay)
		fill("algorithm", &g.Algorithm, d.Algorithm)
		fill("connect-timeout", &g.ConnectTimeout, d.ConnectTimeout)
		fill("response-timeout", &g.ResponseTimeout, d.ResponseTimeout)
		fill("protocol", &g.Protocol, d.Protocol)
		fill("health.enabled", &g.Health.Enabled, d.Health.Enabled)
		fill("health.protocol", &g.Health.Protocol, HealthProtocol(g.Protocol))
		fill("health.path", &g.Health.Path, d.Health.Path)
		fill("health.interval", &g.Health.Interval, d.Health.Interval)
		fill("health.timeout", &g.Health.Timeout, d.Health.Timeout)
		fill("health.healthy", &g.Health.Healthy, d.Health.Healthy)
		fill("health.unhealthy", &g.Health.Unhealthy, d.Health.Unhealthy)
		fill("health.matcher", &g.Health.Matcher, d.Health.Matcher)
		c.Groups[name] = g
	}
}

func defaultAction(a *Action, set func(string) bool, path string) {
	if a.FixedResponse != nil && !set(path+".fixed-response.content-type") {
		a.FixedResponse.ContentType = defaultContentType
	}
}

var (
	durationType   = reflect.TypeOf(time.Duration(0))
	stringListType = reflect.TypeOf([]string(nil))
)

// durationHook decodes env and flag strings into durations; file values arrive
// already converted by parseFile.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType || from.Kind() != reflect.String {
		return data, nil
	}
	return parseDuration(data.(string))
}

// boolHook decodes the env and flag spellings parseBool accepts (yes, on, 1...),
// which checkOverrides has already checked.
func boolHook(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.Bool || from.Kind() != reflect.String {
		return data, nil
	}
	return parseBool(data.(string))
}

// commaListHook reads a list from one env string: BERTH_CLUSTER_JOIN="10.0.0.6,10.0.0.7".
func commaListHook(from, to reflect.Type, data any) (any, error) {
	if to != stringListType || from.Kind() != reflect.String {
		return data, nil
	}
	var list []string
	for item := range strings.SplitSeq(data.(string), ",") {
		if item = strings.TrimSpace(item); item != "" {
			list = append(list, item)
		}
	}
	return list, nil
}

// maxSeconds is the longest whole number of seconds a time.Duration holds.
const maxSeconds = int64(1<<63-1) / int64(time.Second)

// parseDuration reads a Go duration ("30s", "5m") or a whole number of seconds.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if seconds, err := strconv.ParseInt(s, 10, 64); err == nil {
		if seconds > maxSeconds || seconds < -maxSeconds {
			return 0, fmt.Errorf("%s seconds is too long: the maximum is %d", s, maxSeconds)
		}
		return time.Duration(seconds) * time.Second, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		// Whole days, for stickiness durations like 1d or 7d.
		if n, err := strconv.ParseInt(days, 10, 64); err == nil && n >= 0 && n <= maxSeconds/86400 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: write it like 30s, 5m, 1d or a number of seconds", s)
	}
	return d, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean: write true or false", s)
}

// FieldError is one problem in the configuration.
type FieldError struct {
	// Path is the key path, e.g. "listeners[0].rules[1].priority"; empty for a
	// problem of the whole file such as a YAML syntax error.
	Path    string
	Message string
	// Line is the line of the file the problem is on; 0 when it does not come from
	// the file (a default, env or a flag).
	Line int
}

// String renders the problem as "path: message (line N)".
func (e FieldError) String() string {
	s := e.Message
	if e.Path != "" {
		s = e.Path + ": " + s
	}
	if e.Line > 0 {
		s += fmt.Sprintf(" (line %d)", e.Line)
	}
	return s
}

// Errors is every problem found in a configuration; it is the error Load returns
// when the configuration is wrong.
type Errors []FieldError

// Error renders one problem per line.
func (errs Errors) Error() string {
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.String()
	}
	return strings.Join(lines, "\n")
}

// AsErrors returns the problems carried by err when it comes from Load's validation.
func AsErrors(err error) (Errors, bool) {
	var errs *Errors
	if errors.As(err, &errs) {
		return *errs, true
	}
	return nil, false
}
