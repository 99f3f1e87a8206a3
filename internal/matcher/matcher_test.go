package matcher

import (
	"strings"
	"testing"
)

func TestParseAndMatch(t *testing.T) {
	cases := []struct {
		in      string
		pass    []int
		fail    []int
		wantErr string
	}{
		{in: "200", pass: []int{200}, fail: []int{201, 404}},
		{in: "200,202", pass: []int{200, 202}, fail: []int{201}},
		{in: "200-299", pass: []int{200, 250, 299}, fail: []int{199, 300}},
		{in: " 200-204 , 404 ", pass: []int{204, 404}, fail: []int{205}},
		{in: "", wantErr: "is empty"},
		{in: "abc", wantErr: `"abc" is not a status code`},
		{in: "299-200", wantErr: `"299-200" is not`},
		{in: "100", wantErr: `"100" is not`},
		{in: "500", wantErr: `"500" is not`},
	}
	for _, c := range cases {
		m, err := Parse(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("Parse(%q) err = %v, want %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.in, err)
		}
		for _, code := range c.pass {
			if !m.Match(code) {
				t.Errorf("%q does not match %d", c.in, code)
			}
		}
		for _, code := range c.fail {
			if m.Match(code) {
				t.Errorf("%q matches %d", c.in, code)
			}
		}
	}
}
