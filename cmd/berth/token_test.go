package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-lb/berth/agent/admin"
	"github.com/berth-lb/berth/agent/api"
)

const cliToken = "Y2xpLXRva2VuLW9mLXRoZS10ZXN0cw=="

func writeTokenFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// serveProtectedAdmin serves the admin API of src behind cliToken and
// answers its address and the drain calls that reached the source.
func serveProtectedAdmin(t *testing.T, src fakeSource) (address string, drained, undrained *[]string) {
	t.Helper()
	token, err := admin.OpenToken(writeTokenFile(t, cliToken+"\n"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	src.Drained, src.Undrained = new([]string), new([]string)
	return serveAdminWith(t, src, admin.Access{Token: token}), src.Drained, src.Undrained
}

// Every command that calls the admin API sends the token of --token-file or
// BERTH_ADMIN_TOKEN_FILE, and its mutating calls are declared JSON.
func TestCommandsSendTheToken(t *testing.T) {
	src := busySource()
	src.DrainList = []api.Drain{{Target: "host-a/1a2b3c4d5e6f/8080", Container: "web-1", Nodes: 1, Reported: 1, Done: true, Outcome: "drained"}}
	address, drained, undrained := serveProtectedAdmin(t, src)
	tokenFile := writeTokenFile(t, cliToken+"\n")
	tests := []struct {
		name string
		run  func(args []string, stdout, stderr io.Writer) error
		args []string
		env  string
		want string
	}{
		{"status", runStatus, []string{"--admin", address, "--token-file", tokenFile}, "", "node:     host-a"},
		{"status, token file from env", runStatus, []string{"--admin", address}, tokenFile, "node:     host-a"},
		{"targets", runTargets, []string{"--admin", address, "--token-file", tokenFile, "-o", "json"}, "", `"id": "host-a/1a2b3c4d5e6f/8080"`},
		{"drain --wait", runDrain, []string{"web-1", "--token-file", tokenFile, "--admin", address, "--wait"}, "", "drained"},
		{"drain --undo", runDrain, []string{"--admin", address, "--undo", "host-a/1a2b3c4d5e6f/8080"}, tokenFile, "serves again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("BERTH_ADMIN_TOKEN_FILE", tt.env)
			var stdout bytes.Buffer
			if err := tt.run(tt.args, &stdout, io.Discard); err != nil {
				t.Fatalf("error: %v", err)
			}
			if !strings.Contains(stdout.String(), tt.want) {
				t.Errorf("stdout = %q, want %q in it", stdout.String(), tt.want)
			}
		})
	}
	if strings.Join(*drained, ",") != "web-1" || strings.Join(*undrained, ",") != "host-a/1a2b3c4d5e6f/8080" {
		t.Errorf("drained %v, undrained %v; want the calls of drain and drain --undo", *drained, *undrained)
	}
}

func TestCommandsWithoutTheRightToken(t *testing.T) {
	address, drained, _ := serveProtectedAdmin(t, busySource())
	t.Setenv("BERTH_ADMIN_TOKEN_FILE", "")
	wrong := writeTokenFile(t, "d3JvbmctdG9rZW4tb2YtdGhlLXRlc3Rz\n")
	empty := writeTokenFile(t, "\n")
	tests := []struct {
		name    string
		run     func(args []string, stdout, stderr io.Writer) error
		args    []string
		wantErr string
	}{
		{"no token", runStatus, []string{"--admin", address},
			"the agent answered 401 Unauthorized: admin: this call needs the admin token: send Authorization: Bearer TOKEN, TOKEN being the content of the agent's admin.token-file (berth commands: --token-file or BERTH_ADMIN_TOKEN_FILE)"},
		{"wrong token", runDrain, []string{"web-1", "--admin", address, "--token-file", wrong},
			"the agent answered 401 Unauthorized: admin: wrong token: it is not the content of the agent's admin.token-file"},
		{"empty token file", runTargets, []string{"--admin", address, "--token-file", empty},
			"--token-file: the token file " + empty + " is empty; make one with: head -c 32 /dev/urandom | base64 > /etc/berth/admin-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run(tt.args, io.Discard, io.Discard)
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("error = %v\nwant    %s", err, tt.wantErr)
			}
		})
	}
	if len(*drained) != 0 {
		t.Errorf("drained %v with a wrong token", *drained)
	}
}
