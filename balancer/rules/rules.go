// Package rules compiles listener rules into a table that matches a request's
// host and path without allocating. Semantics follow AWS ALB: host patterns are
// case-insensitive, path patterns are case-sensitive and never see the query,
// both take the wildcards * (any run, also empty) and ? (exactly one byte).
package rules

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// MinPriority and MaxPriority bound a rule's priority, as on ALB.
const (
	MinPriority = 1
	MaxPriority = 50000
)

// Rule is one rule to compile. Target is an opaque index the caller maps to an action.
type Rule struct {
	Priority int
	Hosts    []string
	Paths    []string
	Target   int
}

// Table is a compiled, immutable rule list in priority order.
type Table struct {
	rules []compiled
}

type compiled struct {
	priority int
	hosts    []string // lower-cased
	paths    []string
	target   int
}

// Compile checks and orders rules. Two rules with one priority, a priority out
// of range, an empty pattern or a path not starting with "/" or "*" are errors.
func Compile(in []Rule) (*Table, error) {
	t := &Table{rules: make([]compiled, 0, len(in))}
	seen := make(map[int]bool, len(in))
	var errs []error
	for _, r := range in {
		if r.Priority < MinPriority || r.Priority > MaxPriority {
			errs = append(errs, fmt.Errorf("rules: priority %d out of range: use %d..%d", r.Priority, MinPriority, MaxPriority))
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
			c.hosts = append(c.hosts, strings.ToLower(h))
		}
		for _, p := range r.Paths {
			if p == "" || (p[0] != '/' && p[0] != '*') {
				errs = append(errs, fmt.Errorf("rules: priority %d: path pattern %q must start with / or *", r.Priority, p))
				continue
			}
			c.paths = append(c.paths, p)
		}
		t.rules = append(t.rules, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(t.rules, func(i, j int) bool { return t.rules[i].priority < t.rules[j].priority })
	return t, nil
}

// Match returns the Target of the first rule (lowest priority) that matches, or
// -1. host must be without port; path without query.
func (t *Table) Match(host, path string) int {
	for i := range t.rules {
		r := &t.rules[i]
		if len(r.hosts) > 0 && !anyMatch(r.hosts, host, true) {
			continue
		}
		if len(r.paths) > 0 && !anyMatch(r.paths, path, false) {
			continue
		}
		return r.target
	}
	return -1
}

// Len is the number of rules.
func (t *Table) Len() int { return len(t.rules) }

func anyMatch(patterns []string, s string, foldCase bool) bool {
	for _, p := range patterns {
		if Wildcard(p, s, foldCase) {
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

func fold(b byte, on bool) byte {
	if on && 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}
