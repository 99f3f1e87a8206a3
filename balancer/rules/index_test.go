package rules

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// scanMatch is Table.Match as it was before the index, a scan in priority
// order: the reference the index must agree with.
func scanMatch(t *Table, host, path string) int {
	for i := range t.rules {
		r := &t.rules[i]
		if r.hostsOnly && r.matchHostPath(host, path) {
			return r.target
		}
	}
	return -1
}

// scanMatchRequest is Table.MatchRequest as it was before the index.
func scanMatchRequest(t *Table, req *Request) int {
	for i := range t.rules {
		r := &t.rules[i]
		if !r.matchHostPath(req.Host, req.Path) {
			continue
		}
		if !r.hostsOnly && !r.matchOthers(req) {
			continue
		}
		return r.target
	}
	return -1
}

// withFiller adds rules no test request matches, after every other rule, so
// that even a small table is searched by its index rather than scanned.
func withFiller(in []Rule) []Rule {
	for i := range scanUpTo {
		in = append(in, Rule{Priority: MaxDefaultPriority - i, Hosts: []string{"filler" + strconv.Itoa(i) + ".invalid"}, Target: 1000 + i})
	}
	return in
}

// TestIndexFindsTheFirstRule covers the ways a rule is filed (whole host,
// host suffix or prefix, path when a host has no literal end, neither) and
// that the lowest priority wins across them.
func TestIndexFindsTheFirstRule(t *testing.T) {
	cases := []struct {
		name  string
		rules []Rule
		req   Request
		want  int
	}{
		{"exact host, case folded", []Rule{{Hosts: []string{"App.Example.COM"}}}, Request{Host: "aPP.example.com", Path: "/"}, 1},
		{"exact host, one byte longer", []Rule{{Hosts: []string{"app.example.com"}}}, Request{Host: "app.example.comx", Path: "/"}, -1},
		{"host suffix", []Rule{{Hosts: []string{"*.Example.com"}}}, Request{Host: "a.b.EXAMPLE.com"}, 1},
		{"host suffix is not the host", []Rule{{Hosts: []string{"*.example.com"}}}, Request{Host: "example.com"}, -1},
		{"host prefix", []Rule{{Hosts: []string{"api.*"}}}, Request{Host: "API.example.org"}, 1},
		{"host prefix and suffix, middle checked", []Rule{{Hosts: []string{"api-*.example.com"}}}, Request{Host: "api-.example.com"}, 1},
		{"host ? inside", []Rule{{Hosts: []string{"a?c.com"}}}, Request{Host: "abc.com"}, 1},
		{"host ? inside, wrong length", []Rule{{Hosts: []string{"a?c.com"}}}, Request{Host: "abbc.com"}, -1},
		{"host * filed by path", []Rule{{Hosts: []string{"*"}, Paths: []string{"/api/*"}}}, Request{Host: "any", Path: "/api/x"}, 1},
		{"host * filed by path, path differs", []Rule{{Hosts: []string{"*"}, Paths: []string{"/api/*"}}}, Request{Host: "any", Path: "/web"}, -1},
		{"one host pattern without literal end", []Rule{{Hosts: []string{"a.com", "*b*"}}}, Request{Host: "xbx"}, 1},
		{"path suffix", []Rule{{Paths: []string{"*.png"}}}, Request{Path: "/img/a.png"}, 1},
		{"path case-sensitive", []Rule{{Paths: []string{"/API/*"}}}, Request{Path: "/api/x"}, -1},
		{"path exact", []Rule{{Paths: []string{"/health"}}}, Request{Path: "/health"}, 1},
		{"path exact, a prefix of the request", []Rule{{Paths: []string{"/health"}}}, Request{Path: "/healthz"}, -1},
		{"no host, no path", []Rule{{Methods: []string{"POST"}}}, Request{Host: "a", Path: "/", Method: "POST"}, 1},
		{"neither filed by host nor path", []Rule{{Hosts: []string{"*"}, Paths: []string{"*"}}}, Request{Host: "a", Path: "/b"}, 1},
		{
			"lowest priority wins across indexes",
			[]Rule{{Priority: 30, Hosts: []string{"a.example.com"}}, {Priority: 20, Hosts: []string{"*.example.com"}}, {Priority: 10, Paths: []string{"/x/*"}}, {Priority: 40}},
			Request{Host: "a.example.com", Path: "/x/y"}, 3,
		},
		{
			"a filed rule that fails its other condition gives way",
			[]Rule{{Priority: 1, Hosts: []string{"a.com"}, Methods: []string{"POST"}}, {Priority: 2, Hosts: []string{"a.com"}}, {Priority: 3, Paths: []string{"/*"}}},
			Request{Host: "a.com", Path: "/", Method: "GET"}, 2,
		},
		{
			"the unfiled rule wins when it comes first",
			[]Rule{{Priority: 5, Hosts: []string{"a.com"}}, {Priority: 4, Headers: map[string][]string{"X-A": {"1"}}}},
			Request{Host: "a.com", Path: "/", Headers: testHeaders{{"x-a", "1"}}}, 2,
		},
		{
			"two patterns of one rule with one literal",
			[]Rule{{Priority: 2, Hosts: []string{"a.com", "A.COM"}}, {Priority: 1, Hosts: []string{"b.com"}}},
			Request{Host: "a.com"}, 1,
		},
	}
	for _, c := range cases {
		for i := range c.rules {
			c.rules[i].Target = i + 1
			if c.rules[i].Priority == 0 {
				c.rules[i].Priority = i + 1
			}
		}
		table, err := Compile(withFiller(c.rules))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := table.MatchRequest(&c.req); got != c.want {
			t.Errorf("%s: MatchRequest = %d, want %d", c.name, got, c.want)
		}
		if got, want := table.Match(c.req.Host, c.req.Path), scanMatch(table, c.req.Host, c.req.Path); got != want {
			t.Errorf("%s: Match = %d, the scan finds %d", c.name, got, want)
		}
	}
}

// randomRules draws rule sets over a small alphabet, so that patterns
// overlap, share literal ends and match the requests drawn by randomRequest.
type randomRules struct{ rng *rand.Rand }

func (g randomRules) text(alphabet string, maxLen int) string {
	var b strings.Builder
	for n := g.rng.IntN(maxLen + 1); n > 0; n-- {
		b.WriteByte(alphabet[g.rng.IntN(len(alphabet))])
	}
	return b.String()
}

func (g randomRules) patterns(alphabet, first string, maxLen int) []string {
	var out []string
	for n := g.rng.IntN(3); n > 0; n-- {
		out = append(out, first[g.rng.IntN(len(first)):][:1]+g.text(alphabet, maxLen))
	}
	return out
}

func (g randomRules) rules() []Rule {
	n := g.rng.IntN(12)
	priorities := g.rng.Perm(4 * n)
	in := make([]Rule, n)
	for i := range in {
		r := Rule{Priority: priorities[i] + 1, Target: i,
			Hosts: g.patterns("abAB.*?", "abA*?", 5),
			Paths: g.patterns("/ab*?", "/*", 5)}
		switch g.rng.IntN(8) {
		case 0:
			r.Methods = []string{"GET"}
		case 1:
			r.Headers = map[string][]string{"X-A": {"1", "?2"}}
		case 2:
			r.Queries = []QueryPattern{{Key: "k", Value: "v*"}}
		case 3:
			r.SourceIPs = []string{"10.0.0.0/8"}
		}
		in[i] = r
	}
	return in
}

func (g randomRules) request() Request {
	req := Request{Host: g.text("abAB.", 6), Path: "/" + g.text("/abA", 6), Method: "GET", Source: netip.MustParseAddr("192.0.2.1")}
	if g.rng.IntN(2) == 0 {
		req.Method, req.Headers, req.Query, req.Source = "POST", testHeaders{{"x-a", "12"}}, "k=vv", netip.MustParseAddr("10.1.2.3")
	}
	return req
}

// TestIndexAgreesWithScan compares the index with the scan on random rule
// sets and requests. It also counts the requests some rule matched, so that
// it cannot pass by comparing only -1 with -1.
func TestIndexAgreesWithScan(t *testing.T) {
	g := randomRules{rand.New(rand.NewPCG(14, 1))}
	var compared, matched int
	for i := range 3000 {
		in := g.rules()
		if i%2 == 0 {
			in = withFiller(in)
		}
		table, err := Compile(in)
		if err != nil {
			t.Fatal(err)
		}
		for range 40 {
			req := g.request()
			got, want := table.MatchRequest(&req), scanMatchRequest(table, &req)
			if got != want {
				t.Fatalf("MatchRequest(%+v) = %d, the scan finds %d, rules:\n%s", req, got, want, describe(table))
			}
			if got, want := table.Match(req.Host, req.Path), scanMatch(table, req.Host, req.Path); got != want {
				t.Fatalf("Match(%q, %q) = %d, the scan finds %d, rules:\n%s", req.Host, req.Path, got, want, describe(table))
			}
			compared++
			if want >= 0 {
				matched++
			}
		}
	}
	t.Logf("%d of %d random requests matched a rule", matched, compared)
	if matched < compared/10 || matched > compared*9/10 {
		t.Fatalf("%d of %d random requests matched a rule: the draw no longer tests both outcomes", matched, compared)
	}
}

// describe lists a table's rules for a failure message.
func describe(t *Table) string {
	var b strings.Builder
	for _, r := range t.rules {
		b.WriteString(strconv.Itoa(r.priority) + ":")
		for _, p := range r.hosts {
			b.WriteString(" host=" + p.text)
		}
		for _, p := range r.paths {
			b.WriteString(" path=" + p.text)
		}
		if !r.hostsOnly {
			b.WriteString(" +conditions")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// FuzzIndexAgreesWithScan compares the index with the scan on rule sets the
// fuzzer writes, one rule a line: host patterns, path patterns ("-" for
// none, commas between patterns) and optionally a method the rule requires.
// Lines are given priorities out of their order.
func FuzzIndexAgreesWithScan(f *testing.F) {
	f.Fuzz(func(t *testing.T, spec, host, path string) {
		var in []Rule
		for i, line := range strings.Split(spec, "\n") {
			if i == 64 {
				break
			}
			fields := strings.Fields(line)
			if len(fields) < 2 {
				continue
			}
			r := Rule{Priority: i*37%1009 + 1, Target: i, Hosts: patternList(fields[0]), Paths: patternList(fields[1])}
			if len(fields) > 2 {
				r.Methods = []string{fields[2]}
			}
			in = append(in, r)
		}
		table, err := Compile(withFiller(in))
		if err != nil {
			return // the fuzzer wrote a rule Compile refuses
		}
		req := Request{Host: host, Path: path, Method: "GET"}
		if got, want := table.MatchRequest(&req), scanMatchRequest(table, &req); got != want {
			t.Fatalf("MatchRequest(%q, %q) = %d, the scan finds %d, rules:\n%s", host, path, got, want, describe(table))
		}
		if got, want := table.Match(host, path), scanMatch(table, host, path); got != want {
			t.Fatalf("Match(%q, %q) = %d, the scan finds %d, rules:\n%s", host, path, got, want, describe(table))
		}
	})
}

func patternList(field string) []string {
	if field == "-" {
		return nil
	}
	return strings.Split(field, ",")
}

// TestLiteralIndex files hashes directly, many of them shared by several
// ranks (and lengths) and many landing on a taken slot, and looks each one
// up, and hashes never filed.
func TestLiteralIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 2))
	want := map[uint64][]int32{}
	var filed []filedLiteral
	for rank := range int32(5000) {
		h := rng.Uint64() % 3000 * 0x100000001b3 // 3,000 hashes, shared by several ranks
		filed = append(filed, filedLiteral{hash: h, length: 1 + int(h%7), rank: rank})
		if rank%10 == 0 { // one rule with two patterns of one literal
			filed = append(filed, filedLiteral{hash: h, length: 1 + int(h%7), rank: rank})
		}
		want[h] = append(want[h], rank)
	}
	x := newLiteralIndex(filed) // in rank order, as Table.fileRules files them
	displaced := 0
	for h, ranks := range want {
		if got := x.lookup(h); !slices.Equal(got, ranks) {
			t.Fatalf("lookup(%#x) = %v, want %v", h, got, ranks)
		}
		if x.slots[x.slotOf(h)].hash != h {
			displaced++
		}
	}
	if displaced == 0 {
		t.Fatal("no hash landed on a taken slot: the probing is not tested")
	}
	for range 10000 {
		if h := rng.Uint64(); want[h] == nil && len(x.lookup(h)) > 0 {
			t.Fatalf("lookup(%#x) of a hash never filed = %v", h, x.lookup(h))
		}
	}
	if !slices.Equal(x.lens, []int{1, 2, 3, 4, 5, 6, 7}) {
		t.Errorf("lens = %v, want 1..7", x.lens)
	}
	shared := newLiteralIndex([]filedLiteral{{hash: 5, length: 3, rank: 0}, {hash: 5, length: 9, rank: 1}})
	if !slices.Equal(shared.lens, []int{3, 9}) || !slices.Equal(shared.lookup(5), []int32{0, 1}) {
		t.Errorf("two literals of one hash: lens %v, lookup %v; want [3 9], [0 1]", shared.lens, shared.lookup(5))
	}
	var empty literalIndex
	if len(empty.lookup(1)) > 0 || empty.hasLen(0) {
		t.Error("an empty index found something")
	}
}
