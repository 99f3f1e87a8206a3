package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAgentRefusesABadConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "berth.yaml")
	os.WriteFile(file, []byte("listeners:\n  - name: web\n    protocol: http\n    port: 99999\n"), 0o644)
	var stdout, stderr bytes.Buffer
	code := dispatch([]string{"agent", "--config", file}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	for _, want := range []string{"listeners[0].port", "the agent does not start with a bad config"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestAgentRejectsBadFlags(t *testing.T) {
	cases := [][]string{
		{"agent", "--log-level", "loud"},
		{"agent", "extra"},
		{"agent", "--no-such-flag"},
	}
	for _, args := range cases {
		var stdout, stderr bytes.Buffer
		if code := dispatch(args, &stdout, &stderr); code == 0 {
			t.Errorf("%v: exit code 0", args)
		}
	}
}
