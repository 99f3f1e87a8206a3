package balancer

import (
	"strings"
	"testing"
)

func TestInterleave(t *testing.T) {
	a, b, c := &targetState{id: "a"}, &targetState{id: "b"}, &targetState{id: "c"}
	cases := []struct {
		name string
		in   []weightedTarget
		want string
	}{
		{"equal weights", []weightedTarget{{a, 1}, {b, 1}, {c, 1}}, "abc"},
		{"common divisor reduced", []weightedTarget{{a, 10}, {b, 10}}, "ab"},
		{"smooth, not bursty", []weightedTarget{{a, 5}, {b, 1}, {c, 1}}, "aabacaa"},
		{"empty", nil, ""},
	}
	for _, tc := range cases {
		var got strings.Builder
		for _, t := range interleave(tc.in) {
			got.WriteString(t.id)
		}
		if got.String() != tc.want {
			t.Errorf("%s: rotation %q, want %q", tc.name, got.String(), tc.want)
		}
	}
	big := make([]weightedTarget, 100)
	for i := range big {
		big[i] = weightedTarget{&targetState{}, 997}
	}
	if n := len(interleave(big)); n > maxRotation || n < 100 {
		t.Errorf("100 targets of weight 997: rotation of %d", n)
	}
}
