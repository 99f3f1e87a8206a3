package rules

import "testing"

func TestNormalizePath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/admin", "/admin"},
		{"/", "/"},
		{"/a/.hidden/b", "/a/.hidden/b"},
		{"/%61dmin", "/admin"},
		{"/%41DMIN", "/ADMIN"},
		{"//admin", "/admin"},
		{"/x//admin//", "/x/admin/"},
		{"/x/../admin", "/admin"},
		{"/x/./admin", "/x/admin"},
		{"/%2e%2e/admin", "/admin"},
		{"/x/%2E%2E/admin", "/admin"},
		{"/a/b/..", "/a/"},
		{"/..", "/"},
		{"/../../admin", "/admin"},
		{"/a/%2F/b", "/a/%2F/b"},
		{"/a%2", "/a%2"},
		{"/a%zz", "/a%zz"},
		{"/caf%C3%A9", "/caf%C3%A9"},
	}
	var buf []byte
	for _, c := range cases {
		got := c.in
		if b, changed := NormalizePath(buf, c.in); changed {
			buf, got = b, string(b)
		}
		if got != c.want {
			t.Errorf("NormalizePath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestNormalizedPathMatchesDenyRule(t *testing.T) {
	table, err := Compile([]Rule{{Priority: 1, Paths: []string{"/admin*"}, Target: 7}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/admin", "/%61dmin/x", "//admin", "/x/../admin", "/./admin", "/%2e%2e/admin"} {
		path := p
		if b, changed := NormalizePath(nil, p); changed {
			path = string(b)
		}
		if got := table.MatchRequest(&Request{Host: "a", Path: path}); got != 7 {
			t.Errorf("%s: matched %d, want the deny rule", p, got)
		}
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{"app.example.": "app.example", "app.example": "app.example", ".": ".", "": ""} {
		if got := NormalizeHost(in); got != want {
			t.Errorf("NormalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
}
