// Package rules compiles listener rules into a table that matches a request
// without allocating. Semantics follow AWS ALB: host patterns are
// case-insensitive, path patterns are case-sensitive and never see the query,
// header names and values and query keys and values are case-insensitive,
// methods are exact, source IPs are CIDRs of the TCP peer; patterns take the
// wildcards * (any run, also empty) and ? (exactly one byte). Values within a
// condition are OR'd, conditions are AND'd.
//
// A Table is searched, not scanned: Compile files each rule under the literal
// start or end of its host patterns (svc1.example.com, *.example.com), or of
// its path patterns (/api/*) when it has no host condition or a host pattern
// with no literal end, and a request is checked only against the rules filed
// under what its host and path start or end with. Of those that hold, the one
// of lowest priority wins: the rule a scan in priority order finds (index.go).
// What a match costs depends on how many lengths the filed literals have, not
// on how many rules there are, and it allocates nothing.
package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"unsafe"
)

// MinPriority and MaxPriority bound the priority a user gives a rule, as on
// ALB. The priorities above, up to MaxDefaultPriority, are the agent's: it
// numbers there the label rules given no priority, after every numbered rule.
const (
	MinPriority        = 1
	MaxPriority        = 50000
	MaxDefaultPriority = 2 * MaxPriority
)

// Rule is one rule to compile. Target is an opaque index the caller maps to an action.
type Rule struct {
	Priority int
	Hosts    []string
	Paths    []string
	// Headers maps a header name (no wildcard) to value patterns; every named
	// header must match one of its patterns.
	Headers map[string][]string
	// Methods are HTTP methods, compared exactly (case-sensitive).
	Methods []string
	// Queries are key/value patterns; one of them must match one pair of the
	// query string.
	Queries []QueryPattern
	// SourceIPs are CIDRs the TCP peer's address must be in.
	SourceIPs []string
	Target    int
}

// QueryPattern matches one key=value pair of a query string. An empty Key
// matches any key (ALB's key-less condition value).
type QueryPattern struct {
	Key, Value string
}

// Headers lets the matcher read a request's headers in place.
type Headers interface {
	// NumHeaders is the number of header lines.
	NumHeaders() int
	// HeaderAt returns header line i's name and value.
	HeaderAt(i int) (name, value []byte)
}

// Request is what the conditions look at. Its byte slices are read during
// Match only; none is retained.
type Request struct {
	Host   string // without port
	Path   string // without query
	Method string
	// Query is the raw query string, without "?", not decoded.
	Query   string
	Headers Headers
	// Source is the TCP peer's address (never X-Forwarded-For).
	Source netip.Addr
}

// Table is a compiled, immutable rule list in priority order, with the index
// that finds the rules a request may match (index.go).
type Table struct {
	rules        []compiled
	hosts, paths patternIndex
	unfiled      []int32 // ranks of the rules filed under no pattern
}

type compiled struct {
	priority  int
	hosts     []pattern // lower-cased
	paths     []pattern
	headers   []headerCondition
	methods   []string
	queries   []QueryPattern // lower-cased
	prefixes  []netip.Prefix
	target    int
	hostsOnly bool // only host and path conditions: Match can answer it
}

type headerCondition struct {
	name   string    // lower-cased
	values []pattern // lower-cased
}

// pattern is a compiled wildcard pattern. Most patterns a request is checked
// against do not match it, so the literal ends of the pattern are compared
// first: they reject most strings at once, and only what passes them is
// matched in full.
type pattern struct {
	text string
	// prefix and suffix are the literal bytes before the first and after
	// the last wildcard; literal is true when text has no wildcard at all.
	prefix, suffix string
	literal        bool
}

func compilePattern(text string) pattern {
	first, last := strings.IndexAny(text, "*?"), strings.LastIndexAny(text, "*?")
	if first < 0 {
		return pattern{text: text, literal: true}
	}
	return pattern{text: text, prefix: text[:first], suffix: text[last+1:]}
}

// match reports whether s matches the pattern; with foldCase, ASCII letters
// of s are compared lower-cased.
func (p *pattern) match(s string, foldCase bool) bool {
	if p.literal {
		return len(s) == len(p.text) && hasPrefixFold(s, p.text, foldCase)
	}
	if len(s) < len(p.prefix)+len(p.suffix) || !hasPrefixFold(s, p.prefix, foldCase) ||
		!hasPrefixFold(s[len(s)-len(p.suffix):], p.suffix, foldCase) {
		return false
	}
	return Wildcard(p.text, s, foldCase)
}

// hasPrefixFold reports whether s starts with the literal prefix.
func hasPrefixFold(s, prefix string, foldCase bool) bool {
	if len(s) < len(prefix) {
		return false
	}
	if s[:len(prefix)] == prefix {
		return true // most hosts arrive lower-case already: one memory compare
	}
	if !foldCase {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if fold(s[i], true) != prefix[i] {
			return false
		}
	}
	return true
}

// Compile checks and orders rules. Two rules with one priority, a priority out
// of range, an empty pattern or a path not starting with "/" or "*" are errors.
func Compile(in []Rule) (*Table, error) {
	t := &Table{rules: make([]compiled, 0, len(in))}
	seen := make(map[int]bool, len(in))
	var errs []error
	for _, r := range in {
		if r.Priority < MinPriority || r.Priority > MaxDefaultPriority {
			errs = append(errs, fmt.Errorf("rules: priority %d out of range: use %d..%d (up to %d for rules given no priority)", r.Priority, MinPriority, MaxPriority, MaxDefaultPriority))
			continue
		}
		if seen[r.Priority] {
			errs = append(errs, fmt.Errorf("rules: two rules have priority %d: give each rule of a listener its own priority", r.Priority))
			continue
		}
		seen[r.Priority] = true
		c := compiled{priority: r.Priority, target: r.Target}
		for _, h := range r.Hosts {
			if h == "" {
				errs = append(errs, fmt.Errorf("rules: priority %d: empty host pattern", r.Priority))
				continue
			}
			c.hosts = append(c.hosts, compilePattern(strings.ToLower(h)))
		}
		for _, p := range r.Paths {
			if p == "" || (p[0] != '/' && p[0] != '*') {
				errs = append(errs, fmt.Errorf("rules: priority %d: path pattern %q must start with / or *", r.Priority, p))
				continue
			}
			c.paths = append(c.paths, compilePattern(p))
		}
		errs = append(errs, c.compileConditions(r)...)
		t.rules = append(t.rules, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(t.rules, func(i, j int) bool { return t.rules[i].priority < t.rules[j].priority })
	t.fileRules()
	return t, nil
}

func (c *compiled) compileConditions(r Rule) []error {
	var errs []error
	names := make([]string, 0, len(r.Headers))
	for name := range r.Headers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !validHeaderName(name) {
			errs = append(errs, fmt.Errorf("rules: priority %d: header name %q: use letters, digits and -, no wildcard", r.Priority, name))
			continue
		}
		values := r.Headers[name]
		if len(values) == 0 {
			errs = append(errs, fmt.Errorf("rules: priority %d: header %s has no value: list at least one pattern", r.Priority, name))
			continue
		}
		hc := headerCondition{name: strings.ToLower(name)}
		for _, v := range values {
			hc.values = append(hc.values, compilePattern(strings.ToLower(v)))
		}
		c.headers = append(c.headers, hc)
	}
	for _, m := range r.Methods {
		if !validMethod(m) {
			errs = append(errs, fmt.Errorf("rules: priority %d: method %q: use A-Z, _ and - only (methods are case-sensitive)", r.Priority, m))
			continue
		}
		c.methods = append(c.methods, m)
	}
	for _, q := range r.Queries {
		if q.Value == "" {
			errs = append(errs, fmt.Errorf("rules: priority %d: query condition with key %q has an empty value: give a value pattern (* for any)", r.Priority, q.Key))
			continue
		}
		c.queries = append(c.queries, QueryPattern{Key: strings.ToLower(q.Key), Value: strings.ToLower(q.Value)})
	}
	for _, cidr := range r.SourceIPs {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			errs = append(errs, fmt.Errorf("rules: priority %d: source IP %q is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32", r.Priority, cidr))
			continue
		}
		c.prefixes = append(c.prefixes, p.Masked())
	}
	c.hostsOnly = len(c.headers) == 0 && len(c.methods) == 0 && len(c.queries) == 0 && len(c.prefixes) == 0
	return errs
}

func validHeaderName(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func validMethod(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Match returns the Target of the first rule (lowest priority) that matches
// host and path, or -1; a rule with other conditions never matches here. host
// must be without port; path without query. It serves listeners that only see
// a host (SNI).
func (t *Table) Match(host, path string) int {
	return t.find(&matcher{host: host, path: path})
}

// MatchRequest returns the Target of the first rule (lowest priority) whose
// conditions all hold for req, or -1. It never allocates.
func (t *Table) MatchRequest(req *Request) int {
	return t.find(&matcher{host: req.Host, path: req.Path, req: req})
}

func (r *compiled) matchHostPath(host, path string) bool {
	if len(r.hosts) > 0 && !anyMatch(r.hosts, host, true) {
		return false
	}
	return len(r.paths) == 0 || anyMatch(r.paths, path, false)
}

func (r *compiled) matchOthers(req *Request) bool {
	if len(r.methods) > 0 && !containsString(r.methods, req.Method) {
		return false
	}
	if len(r.prefixes) > 0 && !inPrefixes(r.prefixes, req.Source) {
		return false
	}
	for i := range r.headers {
		if !headerMatches(&r.headers[i], req.Headers) {
			return false
		}
	}
	return len(r.queries) == 0 || queryMatches(r.queries, req.Query)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func inPrefixes(prefixes []netip.Prefix, ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// headerMatches holds when any line of the named header has a value matching
// one of the patterns.
func headerMatches(hc *headerCondition, hs Headers) bool {
	if hs == nil {
		return false
	}
	for i, n := 0, hs.NumHeaders(); i < n; i++ {
		name, value := hs.HeaderAt(i)
		if len(name) != len(hc.name) || !equalFold(name, hc.name) {
			continue
		}
		if anyMatch(hc.values, bytesString(value), true) {
			return true
		}
	}
	return false
}

// queryMatches holds when one key=value pair of query matches one pattern.
func queryMatches(patterns []QueryPattern, query string) bool {
	for query != "" {
		pair := query
		if amp := strings.IndexByte(query, '&'); amp >= 0 {
			pair, query = query[:amp], query[amp+1:]
		} else {
			query = ""
		}
		key, value := pair, ""
		if eq := strings.IndexByte(pair, '='); eq >= 0 {
			key, value = pair[:eq], pair[eq+1:]
		}
		for _, p := range patterns {
			if (p.Key == "" || Wildcard(p.Key, key, true)) && Wildcard(p.Value, value, true) {
				return true
			}
		}
	}
	return false
}

func equalFold(b []byte, lower string) bool {
	for i := 0; i < len(b); i++ {
		if fold(b[i], true) != lower[i] {
			return false
		}
	}
	return true
}

// Len is the number of rules.
func (t *Table) Len() int { return len(t.rules) }

func anyMatch(patterns []pattern, s string, foldCase bool) bool {
	for i := range patterns {
		if patterns[i].match(s, foldCase) {
			return true
		}
	}
	return false
}

// Wildcard reports whether s matches pattern, where * matches any run of bytes
// (also none) and ? exactly one byte. With foldCase, ASCII letters of s are
// compared lower-cased; the pattern must already be lower-case. It never
// allocates and runs in O(len(pattern)*len(s)) at worst.
func Wildcard(pattern, s string, foldCase bool) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; {
			case c == '*':
				star, mark = p, i
				p++
				continue
			case c == '?' || c == fold(s[i], foldCase):
				p++
				i++
				continue
			}
		}
		if star < 0 {
			return false
		}
		p = star + 1
		mark++
		i = mark
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// bytesString views b as a string without copying, for matching only.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func fold(b byte, on bool) byte {
	if on && 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}
