package balancer

import (
	"context"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// h2specCases is how many cases h2spec v2.2.1 runs without --strict: every
// one must pass, none may be skipped.
const h2specCases = 145

// h2specPath finds h2spec on PATH or where scripts/ensure-tools.sh installs
// it with go install ($GOBIN, else $GOPATH/bin). In CI a missing h2spec
// fails the test: a conformance suite that silently does not run proves
// nothing.
func h2specPath(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("h2spec"); err == nil {
		return path
	}
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		dirs := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(dirs) == 2 && dirs[1] != "" {
			dirs[1] = filepath.Join(strings.Split(dirs[1], string(os.PathListSeparator))[0], "bin")
		}
		for _, dir := range dirs {
			if path := filepath.Join(dir, "h2spec"); dir != "" {
				if _, err := os.Stat(path); err == nil {
					return path
				}
			}
		}
	}
	const msg = "h2spec is neither on PATH nor in $(go env GOPATH)/bin: run scripts/ensure-tools.sh (make test runs it)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// h2specReport is the part of h2spec's JUnit report the test reads.
type h2specReport struct {
	Suites []struct {
		Cases []struct {
			Section string    `xml:"package,attr"`
			Desc    string    `xml:"classname,attr"`
			Failure *struct{} `xml:"failure"`
			Error   *struct{} `xml:"error"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// runH2spec runs h2spec against addr and returns how many cases ran and the
// names of those that did not pass.
func runH2spec(t *testing.T, path, addr string, tls bool) (ran int, failed []string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	report := filepath.Join(t.TempDir(), "h2spec.xml")
	args := []string{"-h", host, "-p", port, "-j", report, "-o", "5"}
	if tls {
		args = append(args, "-t", "-k")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// h2spec exits 1 when a case fails: the report tells which.
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	raw, rerr := os.ReadFile(report)
	if rerr != nil {
		t.Fatalf("h2spec %v wrote no report (%v, %v):\n%s", args, err, rerr, out)
	}
	var r h2specReport
	if err := xml.Unmarshal(raw, &r); err != nil {
		t.Fatalf("h2spec's report %s: %v", report, err)
	}
	for _, s := range r.Suites {
		for _, c := range s.Cases {
			ran++
			if c.Failure != nil || c.Error != nil || c.Skipped != nil {
				failed = append(failed, c.Section+": "+c.Desc)
			}
		}
	}
	return ran, failed
}

// TestH2specOnHTTPSAndH2C runs the h2spec conformance suite against an https
// listener (ALPN h2) and a plain one (h2c with prior knowledge) in front of
// a real target, and wants every case to pass on both.
func TestH2specOnHTTPSAndH2C(t *testing.T) {
	path := h2specPath(t)
	// Some cases need a response body of at least 5 bytes to watch flow control.
	app := backend(t, "app", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "h2spec answer\n") })
	pki := newTestPKI(t)
	cfg := httpsConfig([]Certificate{pki.leaf(t, "h2spec.example.com")}, serving("a", addrOf(app)))
	// Another loopback address: two listeners may not both ask for 127.0.0.1:0.
	cfg.Listeners = append(cfg.Listeners, ListenerConfig{Name: "plain", Address: "127.0.0.2:0", Default: Action{Forward: "web"}})
	lb := start(t, cfg)
	for _, tc := range []struct {
		name, listener string
		tls            bool
	}{
		{"https", "web", true},
		{"h2c", "plain", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran, failed := runH2spec(t, path, lb.Addr(tc.listener), tc.tls)
			if ran != h2specCases || len(failed) > 0 {
				t.Errorf("h2spec on %s: %d of %d cases passed, want %d of %d; not passed:\n%s",
					tc.name, ran-len(failed), ran, h2specCases, h2specCases, strings.Join(failed, "\n"))
			}
		})
	}
}
