package h2conn

import "testing"

func TestH2Downgradable(t *testing.T) {
	for _, tc := range []struct {
		method, path, authority string
		want                    bool
	}{
		{"GET", "/a/b?c=d&e=%20", "a.example", true},
		{"OPTIONS", "*", "a.example", true},
		{"OPTIONS", "*", "", false},
		{"GET", "*", "a.example", false},
		{"GET", "/", "", false},
		{"GET", "/", ":", false}, // a port without a host (x/net lets it through)
		{"GET", "/", ":8080", false},
		{"GET", "/", "a.example:", true}, // an empty port is allowed (RFC 3986 3.2.3)
		{"OPTIONS", "*", ":", false},
		{"", "/", "a.example", false},
		{"GET /admin", "/", "a.example", false},
		{"GET\t", "/", "a.example", false},
		{"G\xc3\x89T", "/", "a.example", false},
		{"CONNECT", "/", "a.example:443", false},
		{"GET", "", "a.example", false},
		{"GET", "a/b", "a.example", false},
		{"GET", "/a b", "a.example", false},
		{"GET", "/a\x7f", "a.example", false},
		{"GET", "/\xc3\xa9", "a.example", false},
		{"GET", "/a#b", "a.example", false},
		{"GET", "/%", "a.example", false},
		{"GET", "/a%2", "a.example", false},
		{"GET", "/a%zz", "a.example", false},
		{"GET", "/a?q=%2", "a.example", false},
		{"GET", "/a%2Fb%2f?q=%41", "a.example", true},
	} {
		if got := Downgradable(tc.method, tc.path, tc.authority); got != tc.want {
			t.Errorf("h2Downgradable(%q, %q, %q) = %v, want %v", tc.method, tc.path, tc.authority, got, tc.want)
		}
	}
}
