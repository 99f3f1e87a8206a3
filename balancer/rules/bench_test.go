package rules

import (
	"runtime"
	"strconv"
	"testing"
)

// benchSizes are the table sizes the rule benchmarks run at; 100 is ALB's
// limit per listener, the larger ones are platforms with a rule per app.
var benchSizes = []int{1, 100, 1000, 10000, 100000}

// manyRules is a table of n rules in the shape of issue #14: half exact
// hosts (svcI.example.com), half path prefixes (/api/vI/*), the path rules
// first so that the last rule, priority n, is an exact host (svcN.example.com).
func manyRules(n int) []Rule {
	in := make([]Rule, 0, n)
	paths := n / 2
	for i := 1; i <= n; i++ {
		r := Rule{Priority: i, Target: i}
		if i <= paths {
			r.Paths = []string{"/api/v" + strconv.Itoa(i) + "/*"}
		} else {
			r.Hosts = []string{"svc" + strconv.Itoa(i) + ".example.com"}
		}
		in = append(in, r)
	}
	return in
}

// BenchmarkMatchRequestRules matches one request against tables of each size:
// "none" looks like the rules (a host under example.com, a path under /api/)
// and matches none of them, "last" matches only the last rule.
func BenchmarkMatchRequestRules(b *testing.B) {
	for _, n := range benchSizes {
		b.Run("rules="+strconv.Itoa(n), func(b *testing.B) {
			table := mustCompile(b, manyRules(n))
			cases := []struct {
				name string
				req  Request
				want int
			}{
				{"none", Request{Host: "www.example.com", Path: "/api/v0/users", Method: "GET"}, -1},
				{"last", Request{Host: "svc" + strconv.Itoa(n) + ".example.com", Path: "/api/v0/users", Method: "GET"}, n},
			}
			for _, c := range cases {
				b.Run(c.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if table.MatchRequest(&c.req) != c.want {
							b.Fatal("wrong rule")
						}
					}
				})
			}
		})
	}
}

// BenchmarkCompileRules compiles tables of each size; heap-bytes is what one
// compiled table keeps live, measured once after a collection, B/op what
// compiling allocates.
func BenchmarkCompileRules(b *testing.B) {
	for _, n := range benchSizes {
		in := manyRules(n)
		b.Run("rules="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				mustCompile(b, in)
			}
			b.ReportMetric(float64(liveBytes(func() any { return mustCompile(b, in) })), "heap-bytes")
		})
	}
}

func mustCompile(b *testing.B, in []Rule) *Table {
	table, err := Compile(in)
	if err != nil {
		b.Fatal(err)
	}
	return table
}

// liveBytes is how much more heap is in use, after a collection, while the
// value build returns is kept than before build ran.
func liveBytes(build func() any) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	return after.HeapAlloc - before.HeapAlloc
}
