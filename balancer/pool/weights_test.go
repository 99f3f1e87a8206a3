package pool

import (
	"strings"
	"testing"
)

func TestInterleave(t *testing.T) {
	a, b, c := &Target{ID: "a"}, &Target{ID: "b"}, &Target{ID: "c"}
	cases := []struct {
		name string
		in   []WeightedTarget
		want string
	}{
		{"equal weights", []WeightedTarget{{a, 1}, {b, 1}, {c, 1}}, "abc"},
		{"common divisor reduced", []WeightedTarget{{a, 10}, {b, 10}}, "ab"},
		{"smooth, not bursty", []WeightedTarget{{a, 5}, {b, 1}, {c, 1}}, "aabacaa"},
		{"empty", nil, ""},
	}
	for _, tc := range cases {
		var got strings.Builder
		for _, t := range Interleave(tc.in) {
			got.WriteString(t.ID)
		}
		if got.String() != tc.want {
			t.Errorf("%s: rotation %q, want %q", tc.name, got.String(), tc.want)
		}
	}
	big := make([]WeightedTarget, 100)
	for i := range big {
		big[i] = WeightedTarget{&Target{}, 997}
	}
	if n := len(Interleave(big)); n > maxRotation || n < 100 {
		t.Errorf("100 targets of weight 997: rotation of %d", n)
	}
}
