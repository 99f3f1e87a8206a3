package rules

import (
	"fmt"
	"strings"
	"testing"
)

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
	}
	for _, c := range cases {
		if got := Wildcard(c.pattern, c.s, c.fold); got != c.want {
			t.Errorf("Wildcard(%q, %q, %v) = %v, want %v", c.pattern, c.s, c.fold, got, c.want)
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

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name  string
		rules []Rule
		want  string
	}{
		{"duplicate priority", []Rule{{Priority: 5}, {Priority: 5}}, "two rules have priority 5"},
		{"priority zero", []Rule{{Priority: 0}}, "priority 0 out of range"},
		{"priority too high", []Rule{{Priority: 50001}}, "priority 50001 out of range"},
		{"relative path", []Rule{{Priority: 1, Paths: []string{"api"}}}, `path pattern "api" must start with / or *`},
		{"empty host", []Rule{{Priority: 1, Hosts: []string{""}}}, "empty host pattern"},
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
	b.ReportAllocs()
	for b.Loop() {
		if table.Match("svc100.example.com", "/api/v100/users") != 100 {
			b.Fatal("no match")
		}
	}
}
