package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfigFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRunConfig(t *testing.T) {
	t.Setenv("BERTH_ADMIN_LISTEN", "")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	writeConfigFile(t, good, "listeners:\n  - name: web\n    port: 8080\n    default: {forward: web}\n")
	writeConfigFile(t, bad, "listners: []\nlisteners:\n  - name: web\n    protocol: quic\n    port: 80\n    default: {forward: web}\n")

	tests := []struct {
		name       string
		args       []string
		wantStdout string
		wantErr    string
	}{
		{"valid file", []string{"check", good}, good + ": ok\n", ""},
		{"every problem on its own line", []string{"check", bad},
			bad + ": listners: unknown key; did you mean listeners? (line 1)\n" +
				bad + ": listeners[0].protocol: unknown protocol \"quic\"; supported: http, https, tcp, tls, udp (line 4)\n",
			bad + " has 2 problems; fix them and check again"},
		{"missing file", []string{"check", filepath.Join(dir, "absent.yaml")}, "", "no such file or directory"},
		{"no file", []string{"check"}, "", "want 'berth config check FILE'"},
		{"unknown subcommand", []string{"lint", good}, "", "want 'berth config check FILE'"},
		{"help", []string{"--help"}, configUsage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runConfig(tt.args, &stdout, &stderr)
			if got := stdout.String(); got != tt.wantStdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", got, tt.wantStdout)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDispatchConfigCheckExitCodes(t *testing.T) {
	t.Setenv("BERTH_ADMIN_LISTEN", "")
	dir := t.TempDir()
	good := filepath.Join(dir, "berth.yaml")
	writeConfigFile(t, good, "admin: {listen: 127.0.0.1:9900}\n")
	bad := filepath.Join(dir, "bad.yaml")
	writeConfigFile(t, bad, "admin: {listen: nowhere}\n")
	var out, errOut bytes.Buffer
	if code := dispatch([]string{"config", "check", good}, &out, &errOut); code != 0 {
		t.Errorf("valid file: exit %d, stderr %s", code, errOut.String())
	}
	if code := dispatch([]string{"config", "check", bad}, &out, &errOut); code != 1 {
		t.Errorf("invalid file: exit %d, want 1", code)
	}
}
