package rules

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// testHeaders is a request's header lines, in order.
type testHeaders [][2]string

func (h testHeaders) NumHeaders() int { return len(h) }
func (h testHeaders) HeaderAt(i int) (name, value []byte) {
	return []byte(h[i][0]), []byte(h[i][1])
}

// byteHeaders are header lines held as bytes, as the proxy holds them, so a
// benchmark measures matching and not conversions.
type byteHeaders [][2][]byte

func (h byteHeaders) NumHeaders() int                     { return len(h) }
func (h byteHeaders) HeaderAt(i int) (name, value []byte) { return h[i][0], h[i][1] }

// TestWildcard checks Wildcard and the compiled patterns that check literal
// ends first: both must agree on every case.
func TestWildcard(t *testing.T) {
	cases := []struct {
		pattern, s string
		fold       bool
		want       bool
	}{
		{"/api/*", "/api/users", false, true},
		{"/api/*", "/api/", false, true},
		{"/api/*", "/api", false, false},
		{"/API/*", "/api/x", false, false},
		{"/img/?.png", "/img/a.png", false, true},
		{"/img/?.png", "/img/ab.png", false, false},
		{"*", "", false, true},
		{"*", "/anything", false, true},
		{"/a*b*c", "/axxbyyc", false, true},
		{"/a*b*c", "/axxbyy", false, false},
		{"*.example.com", "www.example.com", true, true},
		{"*.example.com", "WWW.Example.COM", true, true},
		{"*.example.com", "example.com", true, false},
		{"example.com", "example.com", true, true},
		{"example.com", "example.co", true, false},
		{"a?c", "abc", true, true},
		{"", "", false, true},
		{"", "x", false, false},
		{"a*a", "a", false, false},
		{"a*a", "aa", false, true},
		{"?", "", false, false},
		{"*x*", "x", false, true},
		{"a?*?b", "ab", false, false},
		{"a?*?b", "axyb", false, true},
		{"*.svc.internal", "svc.internal", true, false},
		{"*.svc.internal", "A.SVC.INTERNAL", true, true},
		{"/v1/*/items", "/v1/x/items", false, true},
		{"/v1/*/items", "/v1/items", false, false},
	}
	for _, c := range cases {
		if got := Wildcard(c.pattern, c.s, c.fold); got != c.want {
			t.Errorf("Wildcard(%q, %q, %v) = %v, want %v", c.pattern, c.s, c.fold, got, c.want)
		}
		p := compilePattern(c.pattern)
		if got := p.match(c.s, c.fold); got != c.want {
			t.Errorf("compilePattern(%q).match(%q, %v) = %v, want %v", c.pattern, c.s, c.fold, got, c.want)
		}
	}
}

func TestMatchPriorityAndConditions(t *testing.T) {
	table, err := Compile([]Rule{
		{Priority: 30, Paths: []string{"/*"}, Target: 3},
		{Priority: 10, Hosts: []string{"API.example.com"}, Paths: []string{"/v1/*", "/v2/*"}, Target: 1},
		{Priority: 20, Hosts: []string{"*.example.com"}, Target: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		host, path string
		want       int
	}{
		{"api.example.com", "/v1/users", 1},
		{"api.example.com", "/v2/x", 1},
		{"api.example.com", "/v3/x", 2},     // host matches 10 but path does not: AND
		{"www.Example.com", "/v1/users", 2}, // case-insensitive host
		{"example.com", "/x", 3},            // *.example.com does not match example.com
		{"other", "/x", 3},
	}
	for _, c := range cases {
		if got := table.Match(c.host, c.path); got != c.want {
			t.Errorf("Match(%q, %q) = %d, want %d", c.host, c.path, got, c.want)
		}
	}
	empty, _ := Compile(nil)
	if got := empty.Match("a", "/"); got != -1 {
		t.Errorf("empty table matched %d", got)
	}
}

func TestMatchRequestConditions(t *testing.T) {
	cases := []struct {
		name string
		rule Rule
		req  Request
		want bool
	}{
		{"header name case-insensitive", Rule{Headers: map[string][]string{"X-Env": {"beta"}}}, Request{Headers: testHeaders{{"x-ENV", "beta"}}}, true},
		{"header value case-insensitive", Rule{Headers: map[string][]string{"X-Env": {"BeTa"}}}, Request{Headers: testHeaders{{"X-Env", "BETA"}}}, true},
		{"header value wildcard", Rule{Headers: map[string][]string{"User-Agent": {"*Mobile*"}}}, Request{Headers: testHeaders{{"User-Agent", "Foo mobile Safari"}}}, true},
		{"header value ?", Rule{Headers: map[string][]string{"X-V": {"v?"}}}, Request{Headers: testHeaders{{"X-V", "v12"}}}, false},
		{"header values OR'd", Rule{Headers: map[string][]string{"X-Env": {"alpha", "beta"}}}, Request{Headers: testHeaders{{"X-Env", "beta"}}}, true},
		{"header absent", Rule{Headers: map[string][]string{"X-Env": {"*"}}}, Request{Headers: testHeaders{{"X-Other", "beta"}}}, false},
		{"header any line of the name", Rule{Headers: map[string][]string{"X-Env": {"beta"}}}, Request{Headers: testHeaders{{"X-Env", "alpha"}, {"X-Env", "beta"}}}, true},
		{"two headers AND'd, one missing", Rule{Headers: map[string][]string{"X-A": {"1"}, "X-B": {"2"}}}, Request{Headers: testHeaders{{"X-A", "1"}}}, false},
		{"two headers AND'd", Rule{Headers: map[string][]string{"X-A": {"1"}, "X-B": {"2"}}}, Request{Headers: testHeaders{{"X-B", "2"}, {"X-A", "1"}}}, true},
		{"no headers at all", Rule{Headers: map[string][]string{"X-A": {"*"}}}, Request{}, false},
		{"method exact", Rule{Methods: []string{"GET", "POST"}}, Request{Method: "POST"}, true},
		{"method case-sensitive", Rule{Methods: []string{"GET"}}, Request{Method: "get"}, false},
		{"method no prefix", Rule{Methods: []string{"GET"}}, Request{Method: "GETX"}, false},
		{"query key and value", Rule{Queries: []QueryPattern{{Key: "version", Value: "v1"}}}, Request{Query: "a=b&version=v1"}, true},
		{"query case-insensitive", Rule{Queries: []QueryPattern{{Key: "Version", Value: "V1"}}}, Request{Query: "VERSION=v1"}, true},
		{"query value wildcard", Rule{Queries: []QueryPattern{{Key: "lang", Value: "en-*"}}}, Request{Query: "lang=en-GB"}, true},
		{"query key optional", Rule{Queries: []QueryPattern{{Value: "debug"}}}, Request{Query: "x=1&mode=debug"}, true},
		{"query wrong value", Rule{Queries: []QueryPattern{{Key: "version", Value: "v1"}}}, Request{Query: "version=v2"}, false},
		{"query pair OR'd", Rule{Queries: []QueryPattern{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}}}, Request{Query: "b=2"}, true},
		{"query absent", Rule{Queries: []QueryPattern{{Key: "a", Value: "*"}}}, Request{Query: ""}, false},
		{"query key without value", Rule{Queries: []QueryPattern{{Key: "flag", Value: "*"}}}, Request{Query: "flag"}, true},
		{"source ip in CIDR", Rule{SourceIPs: []string{"10.0.0.0/8"}}, Request{Source: netip.MustParseAddr("10.1.2.3")}, true},
		{"source ip outside", Rule{SourceIPs: []string{"10.0.0.0/8"}}, Request{Source: netip.MustParseAddr("192.168.1.1")}, false},
		{"source ip v4-mapped v6", Rule{SourceIPs: []string{"127.0.0.0/8"}}, Request{Source: netip.MustParseAddr("::ffff:127.0.0.1")}, true},
		{"source ip v6", Rule{SourceIPs: []string{"2001:db8::/32"}}, Request{Source: netip.MustParseAddr("2001:db8::1")}, true},
		{"source ip host bits ignored", Rule{SourceIPs: []string{"10.1.2.3/8"}}, Request{Source: netip.MustParseAddr("10.9.9.9")}, true},
		{"source ip never XFF", Rule{SourceIPs: []string{"10.0.0.0/8"}}, Request{Source: netip.MustParseAddr("192.0.2.1"), Headers: testHeaders{{"X-Forwarded-For", "10.0.0.1"}}}, false},
		{"conditions AND'd", Rule{Hosts: []string{"a.com"}, Methods: []string{"GET"}}, Request{Host: "a.com", Method: "POST"}, false},
		{"conditions all hold", Rule{Hosts: []string{"a.com"}, Paths: []string{"/x"}, Methods: []string{"GET"}, Queries: []QueryPattern{{Key: "k", Value: "v"}}}, Request{Host: "A.com", Path: "/x", Method: "GET", Query: "k=v"}, true},
	}
	for _, c := range cases {
		c.rule.Priority, c.rule.Target = 1, 7
		table, err := Compile([]Rule{c.rule})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := table.MatchRequest(&c.req) == 7; got != c.want {
			t.Errorf("%s: matched = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestMatchIgnoresRulesWithOtherConditions(t *testing.T) {
	table, err := Compile([]Rule{
		{Priority: 1, Hosts: []string{"a.com"}, Methods: []string{"GET"}, Target: 1},
		{Priority: 2, Hosts: []string{"a.com"}, Target: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := table.Match("a.com", ""); got != 2 {
		t.Errorf("Match = %d, want 2: a rule with a method condition cannot hold without a request", got)
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name  string
		rules []Rule
		want  string
	}{
		{"duplicate priority", []Rule{{Priority: 5}, {Priority: 5}}, "two rules have priority 5"},
		{"priority zero", []Rule{{Priority: 0}}, "priority 0 out of range"},
		{"priority too high", []Rule{{Priority: MaxDefaultPriority + 1}}, "priority 100001 out of range"},
		{"relative path", []Rule{{Priority: 1, Paths: []string{"api"}}}, `path pattern "api" must start with / or *`},
		{"empty host", []Rule{{Priority: 1, Hosts: []string{""}}}, "empty host pattern"},
		{"wildcard header name", []Rule{{Priority: 1, Headers: map[string][]string{"X-*": {"a"}}}}, `header name "X-*"`},
		{"header without value", []Rule{{Priority: 1, Headers: map[string][]string{"X-A": nil}}}, "header X-A has no value"},
		{"lower-case method", []Rule{{Priority: 1, Methods: []string{"get"}}}, `method "get"`},
		{"empty query value", []Rule{{Priority: 1, Queries: []QueryPattern{{Key: "a"}}}}, `key "a" has an empty value`},
		{"bad CIDR", []Rule{{Priority: 1, SourceIPs: []string{"10.0.0.300/8"}}}, `source IP "10.0.0.300/8" is not a CIDR`},
		{"address without length", []Rule{{Priority: 1, SourceIPs: []string{"10.0.0.1"}}}, `source IP "10.0.0.1" is not a CIDR`},
	}
	for _, c := range cases {
		_, err := Compile(c.rules)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

func BenchmarkMatch100Rules(b *testing.B) {
	var in []Rule
	for i := 1; i <= 100; i++ {
		in = append(in, Rule{Priority: i, Hosts: []string{fmt.Sprintf("svc%d.example.com", i)}, Paths: []string{fmt.Sprintf("/api/v%d/*", i)}, Target: i})
	}
	table, err := Compile(in)
	if err != nil {
		b.Fatal(err)
	}
	req := Request{Host: "svc100.example.com", Path: "/api/v100/users", Method: "GET", Query: "a=b",
		Headers: byteHeaders{{[]byte("User-Agent"), []byte("bench")}}, Source: netip.MustParseAddr("127.0.0.1")}
	b.ReportAllocs()
	for b.Loop() {
		if table.MatchRequest(&req) != 100 {
			b.Fatal("no match")
		}
	}
}

// BenchmarkMatch100RulesNoneMatches is the table scripts/bench-sut.sh loads
// for make bench: 100 rules with an exact and a wildcard host each, none of
// which the request matches, so every rule is checked.
func BenchmarkMatch100RulesNoneMatches(b *testing.B) {
	var in []Rule
	for i := 1; i <= 100; i++ {
		in = append(in, Rule{Priority: i, Hosts: []string{fmt.Sprintf("svc%d.example.com", i), fmt.Sprintf("*.svc%d.internal", i)},
			Paths: []string{fmt.Sprintf("/api/v%d/*", i)}, Target: i})
	}
	table, err := Compile(in)
	if err != nil {
		b.Fatal(err)
	}
	req := Request{Host: "127.0.0.1", Path: "/", Method: "GET"}
	b.ReportAllocs()
	for b.Loop() {
		if table.MatchRequest(&req) != -1 {
			b.Fatal("a rule matched")
		}
	}
}

func BenchmarkMatchRequestAllConditions(b *testing.B) {
	var in []Rule
	for i := 1; i <= 100; i++ {
		in = append(in, Rule{Priority: i, Hosts: []string{fmt.Sprintf("svc%d.example.com", i)},
			Headers: map[string][]string{"X-Env": {"prod*"}}, Methods: []string{"GET"},
			Queries: []QueryPattern{{Key: "v", Value: "1"}}, SourceIPs: []string{"127.0.0.0/8"}, Target: i})
	}
	table, err := Compile(in)
	if err != nil {
		b.Fatal(err)
	}
	req := &Request{Host: "svc100.example.com", Path: "/", Method: "GET", Query: "x=y&v=1",
		Headers: byteHeaders{{[]byte("User-Agent"), []byte("bench")}, {[]byte("x-env"), []byte("production")}}, Source: netip.MustParseAddr("127.0.0.1")}
	b.ReportAllocs()
	for b.Loop() {
		if table.MatchRequest(req) != 100 {
			b.Fatal("no match")
		}
	}
}
