package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadKeys(t *testing.T) {
	k16 := "MDEyMzQ1Njc4OWFiY2RlZg==" // "0123456789abcdef"
	k32 := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	cases := []struct {
		name, file string
		keys       int
		err        string
	}{
		{"one key", k32 + "\n", 1, ""},
		{"rotation: two keys, comments and blanks", "# new key first\n" + k16 + "\n\n" + k32 + "\n", 2, ""},
		{"not base64", "hello!\n", 0, "line 1: not the base64 of a 16, 24 or 32-byte key"},
		{"wrong length", "MDEyMzQ1Njc=\n", 0, "line 1: not the base64"},
		{"empty", "# nothing\n", 0, "holds no key"},
	}
	for _, c := range cases {
		path := filepath.Join(t.TempDir(), "gossip.key")
		os.WriteFile(path, []byte(c.file), 0o600)
		keys, err := ReadKeys(path)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err = %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || len(keys) != c.keys {
			t.Errorf("%s: %d keys, err %v", c.name, len(keys), err)
		}
	}
	if _, err := ReadKeys("/nonexistent/gossip.key"); err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("missing file: err = %v", err)
	}
}
