package admin

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const testToken = "c2VjcmV0LXRva2VuLWZvci10ZXN0cw=="

// writeToken writes a token file and answers its path.
func writeToken(t *testing.T, dir, content string) string {
	t.Helper()
	path := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func openToken(t *testing.T, content string) (*Token, string) {
	t.Helper()
	path := writeToken(t, t.TempDir(), content)
	token, err := OpenToken(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return token, path
}

// accessServer serves the admin API of the example source with access on a
// real loopback listener; drained records the drain calls that got through.
func accessServer(t *testing.T, access Access) (url string, drained *[]string) {
	t.Helper()
	src := exampleSource()
	src.Drained, src.Undrained = new([]string), new([]string)
	server := httptest.NewServer(Handler(src, prometheus.NewRegistry(), access))
	t.Cleanup(server.Close)
	return server.URL, src.Drained
}

type answer struct {
	code   int
	header http.Header
	body   string
}

// call sends one request; host, when set, replaces the Host header.
func call(t *testing.T, method, url, host string, header map[string]string, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for name, value := range header {
		req.Header.Set(name, value)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// checkError checks that a refusal carries an api.Error naming want.
func checkError(t *testing.T, got answer, wantCode int, want string) {
	t.Helper()
	if got.code != wantCode {
		t.Fatalf("code = %d, want %d; body %q", got.code, wantCode, got.body)
	}
	var doc struct{ Error string }
	if err := json.Unmarshal([]byte(got.body), &doc); err != nil || got.header.Get("Content-Type") != "application/json" {
		t.Fatalf("body %q (%s) is not a JSON error: %v", got.body, got.header.Get("Content-Type"), err)
	}
	if !strings.Contains(doc.Error, want) {
		t.Errorf("error %q does not say %q", doc.Error, want)
	}
}

func TestAccessToken(t *testing.T) {
	token, _ := openToken(t, testToken+"\n")
	protected, _ := accessServer(t, Access{Token: token})
	publicMetrics, _ := accessServer(t, Access{Token: token, MetricsPublic: true})
	bearer := map[string]string{"Authorization": "Bearer " + testToken}
	tests := []struct {
		name       string
		url        string
		header     map[string]string
		wantCode   int
		wantError  string
		wantBearer string // WWW-Authenticate, when the answer is 401
	}{
		{name: "healthz needs no token", url: protected + "/healthz", wantCode: 200},
		{name: "status without a token", url: protected + "/api/v1/status", wantCode: 401, wantError: "needs the admin token", wantBearer: `Bearer realm="berth"`},
		{name: "basic auth is not the token", url: protected + "/api/v1/status", header: map[string]string{"Authorization": "Basic " + testToken}, wantCode: 401, wantError: "needs the admin token", wantBearer: `Bearer realm="berth"`},
		{name: "wrong token", url: protected + "/api/v1/targets", header: map[string]string{"Authorization": "Bearer " + testToken + "x"}, wantCode: 401, wantError: "wrong token", wantBearer: `Bearer realm="berth", error="invalid_token"`},
		{name: "a prefix of the token", url: protected + "/api/v1/targets", header: map[string]string{"Authorization": "Bearer " + testToken[:16]}, wantCode: 401, wantError: "wrong token", wantBearer: `Bearer realm="berth", error="invalid_token"`},
		{name: "token", url: protected + "/api/v1/status", header: bearer, wantCode: 200},
		{name: "scheme is case-insensitive", url: protected + "/api/v1/nodes", header: map[string]string{"Authorization": "bearer " + testToken}, wantCode: 200},
		{name: "unknown path needs the token too", url: protected + "/api/v1/secrets", wantCode: 401, wantError: "needs the admin token", wantBearer: `Bearer realm="berth"`},
		{name: "metrics protected by default", url: protected + "/metrics", wantCode: 401, wantError: "needs the admin token", wantBearer: `Bearer realm="berth"`},
		{name: "metrics with the token", url: protected + "/metrics", header: bearer, wantCode: 200},
		{name: "metrics public", url: publicMetrics + "/metrics", wantCode: 200},
		{name: "metrics public, the rest is not", url: publicMetrics + "/api/v1/drains", wantCode: 401, wantError: "needs the admin token", wantBearer: `Bearer realm="berth"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := call(t, "GET", tt.url, "", tt.header, "")
			if tt.wantError == "" {
				if got.code != tt.wantCode {
					t.Fatalf("code = %d, want %d; body %q", got.code, tt.wantCode, got.body)
				}
				return
			}
			checkError(t, got, tt.wantCode, tt.wantError)
			if auth := got.header.Get("WWW-Authenticate"); auth != tt.wantBearer {
				t.Errorf("WWW-Authenticate = %q, want %q", auth, tt.wantBearer)
			}
		})
	}
}

func TestAccessTokenDrainNeedsTheToken(t *testing.T) {
	token, _ := openToken(t, testToken)
	url, drained := accessServer(t, Access{Token: token})
	checkError(t, call(t, "POST", url+"/api/v1/drains", "", map[string]string{"Content-Type": "application/json"}, `{"target":"web-1"}`), 401, "needs the admin token")
	if len(*drained) != 0 {
		t.Fatalf("drained %v without the token", *drained)
	}
	got := call(t, "POST", url+"/api/v1/drains", "", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + testToken}, `{"target":"web-1"}`)
	if got.code != 202 || len(*drained) != 1 {
		t.Fatalf("with the token: %d %q, drained %v", got.code, got.body, *drained)
	}
}

// The token file is read again when it changes: a new token replaces the old
// one at once, and a file that becomes unusable refuses every call (503)
// until it is fixed.
func TestAccessTokenReload(t *testing.T) {
	token, path := openToken(t, testToken)
	url, _ := accessServer(t, Access{Token: token})
	status := func(tok string) answer {
		return call(t, "GET", url+"/api/v1/status", "", map[string]string{"Authorization": "Bearer " + tok}, "")
	}
	if got := status(testToken); got.code != 200 {
		t.Fatalf("first token: %d %q", got.code, got.body)
	}
	const rotated = "cm90YXRlZC10b2tlbi1vZi10ZXN0cw=="
	writeToken(t, filepath.Dir(path), rotated+"\n")
	checkError(t, status(testToken), 401, "wrong token")
	if got := status(rotated); got.code != 200 {
		t.Fatalf("rotated token: %d %q", got.code, got.body)
	}
	writeToken(t, filepath.Dir(path), "")
	checkError(t, status(rotated), 503, "token file is unusable")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	checkError(t, status(rotated), 503, "token file is unusable")
	writeToken(t, filepath.Dir(path), rotated)
	if got := status(rotated); got.code != 200 {
		t.Fatalf("restored token: %d %q", got.code, got.body)
	}
}

func TestOpenTokenRefusesABadFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content, want string
	}{
		{"empty", "\n", "is empty; make one with: head -c 32 /dev/urandom | base64"},
		{"two lines", testToken + "\n" + testToken + "\n", "must hold one token of visible ASCII characters"},
		{"space inside", "abcdefgh ijklmnopq", "must hold one token of visible ASCII characters"},
		{"short", "abc123", "has 6 characters, fewer than 16: it could be guessed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OpenToken(writeToken(t, dir, tt.content), slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one saying %q", err, tt.want)
			}
		})
	}
	_, err := OpenToken(filepath.Join(dir, "missing"), slog.New(slog.DiscardHandler))
	if want := "cannot read the token file " + filepath.Join(dir, "missing") + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("missing file: error = %v, want %q", err, want)
	}
}

// A DNS rebinding attack reaches the admin API under the attacker's name:
// only loopback names, the listen address and configured names are served.
func TestAccessHost(t *testing.T) {
	loopback, _ := accessServer(t, Access{Listen: "127.0.0.1:9900"})
	specific, _ := accessServer(t, Access{Listen: "10.0.0.5:9900", AllowedHosts: []string{"Berth-A.internal."}})
	everyAddress, _ := accessServer(t, Access{Listen: "0.0.0.0:9900"})
	emptyHost, _ := accessServer(t, Access{Listen: ":9900"})
	tests := []struct {
		url, host string
		ok        bool
	}{
		{loopback, "127.0.0.1:9900", true},
		{loopback, "127.1.2.3:8080", true},
		{loopback, "localhost:9900", true},
		{loopback, "LocalHost", true},
		{loopback, "localhost.", true},
		{loopback, "[::1]:9900", true},
		{loopback, "evil.example:9900", false},
		{loopback, "localhost.evil.example", false},
		{loopback, "127.0.0.1.evil.example", false},
		{loopback, "10.0.0.5:9900", false},
		{specific, "10.0.0.5:9900", true},
		{specific, "berth-a.internal:9900", true},
		{specific, "BERTH-A.INTERNAL", true},
		{specific, "localhost:9900", true},
		{specific, "10.0.0.6:9900", false},
		{specific, "berth-b.internal:9900", false},
		{everyAddress, "10.0.0.6:9900", true},
		{everyAddress, "[2001:db8::1]:9900", true},
		{everyAddress, "evil.example:9900", false},
		{emptyHost, "192.0.2.7", true},
		{emptyHost, "evil.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got := call(t, "GET", tt.url+"/api/v1/status", tt.host, nil, "")
			if tt.ok {
				if got.code != 200 {
					t.Fatalf("code = %d, want 200; body %q", got.code, got.body)
				}
				return
			}
			checkError(t, got, http.StatusMisdirectedRequest, "is not a name of this admin API")
		})
	}
}

// A web page of another origin must not reach the admin API through the
// browser of a user of this host, whatever it sends.
func TestAccessCrossSite(t *testing.T) {
	url, drained := accessServer(t, Access{})
	own := "http://" + strings.TrimPrefix(url, "http://")
	tests := []struct {
		name   string
		header map[string]string
		ok     bool
	}{
		{"foreign origin", map[string]string{"Origin": "http://evil.example"}, false},
		{"null origin", map[string]string{"Origin": "null"}, false},
		{"origin of another port", map[string]string{"Origin": "http://127.0.0.1:1"}, false},
		{"cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{"same-site", map[string]string{"Sec-Fetch-Site": "same-site"}, false},
		{"own origin", map[string]string{"Origin": own, "Sec-Fetch-Site": "same-origin"}, true},
		{"typed into the address bar", map[string]string{"Sec-Fetch-Site": "none"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := map[string]string{"Content-Type": "application/json"}
			for k, v := range tt.header {
				header[k] = v
			}
			get := call(t, "GET", url+"/api/v1/status", "", header, "")
			post := call(t, "POST", url+"/api/v1/drains", "", header, `{"target":"web-1"}`)
			if tt.ok {
				if get.code != 200 || post.code != 202 {
					t.Fatalf("GET %d, POST %d; want 200 and 202", get.code, post.code)
				}
				return
			}
			checkError(t, get, http.StatusForbidden, "web pages of other origins may not call the admin API")
			checkError(t, post, http.StatusForbidden, "web pages of other origins may not call the admin API")
		})
	}
	if len(*drained) != 2 {
		t.Errorf("drains that got through: %v, want the two of the allowed cases", *drained)
	}
}

// A page can POST text/plain, a form or multipart across sites without the
// browser asking the server first: mutating calls must declare JSON.
func TestAccessMutatingCallsNeedJSON(t *testing.T) {
	url, drained := accessServer(t, Access{})
	for _, contentType := range []string{"", "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"} {
		t.Run("POST "+contentType, func(t *testing.T) {
			checkError(t, call(t, "POST", url+"/api/v1/drains", "", map[string]string{"Content-Type": contentType}, `{"target":"web-1"}`),
				http.StatusUnsupportedMediaType, "a POST must have Content-Type: application/json")
		})
	}
	checkError(t, call(t, "DELETE", url+"/api/v1/drains/web-1", "", nil, ""), http.StatusUnsupportedMediaType, "a DELETE must have Content-Type: application/json")
	if len(*drained) != 0 {
		t.Fatalf("drained %v by calls without JSON", *drained)
	}
	if got := call(t, "POST", url+"/api/v1/drains", "", map[string]string{"Content-Type": "Application/JSON; charset=utf-8"}, `{"target":"web-1"}`); got.code != 202 {
		t.Errorf("JSON with a charset: %d %q, want 202", got.code, got.body)
	}
	if got := call(t, "DELETE", url+"/api/v1/drains/web-1", "", map[string]string{"Content-Type": "application/json"}, ""); got.code != 204 {
		t.Errorf("DELETE with JSON: %d %q, want 204", got.code, got.body)
	}
}
