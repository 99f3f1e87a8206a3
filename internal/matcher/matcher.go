// Package matcher parses and applies HTTP status matchers of health checks,
// with ALB's syntax: a code ("200"), a list ("200,202") or ranges ("200-299"),
// codes from 200 to 499. It is a leaf package: the config, the labels and the
// health checker share it.
package matcher

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Matcher is a parsed matcher. The zero Matcher matches nothing.
type Matcher struct {
	ranges [][2]int
	text   string
}

// Parse reads a matcher; the error says what is wrong in words a user can act on.
func Parse(s string) (Matcher, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Matcher{}, errors.New(`is empty: list passing status codes like "200", "200,202" or "200-299"`)
	}
	m := Matcher{text: s}
	for part := range strings.SplitSeq(s, ",") {
		low, high, isRange := strings.Cut(strings.TrimSpace(part), "-")
		if !isRange {
			high = low
		}
		from, errLow := strconv.Atoi(strings.TrimSpace(low))
		to, errHigh := strconv.Atoi(strings.TrimSpace(high))
		if errLow != nil || errHigh != nil || from < 200 || to > 499 || from > to {
			return Matcher{}, fmt.Errorf(`%q is not a status code or range from 200 to 499, like "200", "200,202" or "200-299"`, part)
		}
		m.ranges = append(m.ranges, [2]int{from, to})
	}
	return m, nil
}

// Match reports whether code passes.
func (m Matcher) Match(code int) bool {
	for _, r := range m.ranges {
		if code >= r[0] && code <= r[1] {
			return true
		}
	}
	return false
}

// String is the matcher as written.
func (m Matcher) String() string { return m.text }

// MarshalText writes the matcher as written, for JSON and logs.
func (m Matcher) MarshalText() ([]byte, error) { return []byte(m.text), nil }
