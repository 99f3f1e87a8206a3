package admin

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// Access says who may use the admin API (docs/api.md, "Access"). The zero value
// needs no token and accepts loopback Host names only.
type Access struct {
	// Token, when not nil, must be sent as "Authorization: Bearer" on every
	// path but /healthz, the dashboard's files (and /metrics when MetricsPublic).
	Token         *Token
	MetricsPublic bool
	// Listen is the listener's address (admin.listen): its host is a name
	// the Host header may carry.
	Listen string
	// AllowedHosts are further names the Host header may carry.
	AllowedHosts []string
}

// guard refuses, in this order: a Host that is not one of the admin API's
// names (421: DNS rebinding), a request a browser marks cross-site (403),
// a missing or wrong token (401), and a mutating call whose body is not
// declared JSON (415: the content types a cross-site form may send without
// the browser asking first).
func (a Access) guard(next http.Handler) http.Handler {
	listenHost, _, _ := net.SplitHostPort(a.Listen)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := requestHost(r.Host)
		if !a.allowedHost(host, listenHost) {
			writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf("admin: Host %q is not a name of this admin API; use 127.0.0.1 or localhost, or add the name to admin.allowed-hosts", host))
			return
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
			writeError(w, http.StatusForbidden, fmt.Sprintf("admin: refused a %s request (Sec-Fetch-Site): web pages of other origins may not call the admin API", site))
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && !strings.EqualFold(origin, "http://"+r.Host) && !strings.EqualFold(origin, "https://"+r.Host) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("admin: refused a request from the web origin %q: web pages of other origins may not call the admin API", origin))
			return
		}
		if a.Token != nil && a.needsToken(r.URL.Path) && !a.authorized(w, r) {
			return
		}
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			if mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mediaType != "application/json" {
				writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("admin: a %s must have Content-Type: application/json", r.Method))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// needsToken: every path but /healthz, the dashboard's files (they hold no
// data: the page asks for the token and its script sends it) and /metrics when
// MetricsPublic.
func (a Access) needsToken(path string) bool {
	_, dashboard := dashboardPaths[path]
	return path != "/healthz" && !dashboard && (path != "/metrics" || !a.MetricsPublic)
}

// authorized checks the bearer token, answering the request when it fails.
func (a Access) authorized(w http.ResponseWriter, r *http.Request) bool {
	scheme, given, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || given == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="berth"`)
		writeError(w, http.StatusUnauthorized, "admin: this call needs the admin token: send Authorization: Bearer TOKEN, TOKEN being the content of the agent's admin.token-file (berth commands: --token-file or BERTH_ADMIN_TOKEN_FILE)")
		return false
	}
	ok, err := a.Token.check(strings.TrimSpace(given))
	switch {
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "admin: the agent's token file is unusable, so every call that needs the token is refused until it is fixed; the agent's log says what is wrong")
		return false
	case !ok:
		w.Header().Set("WWW-Authenticate", `Bearer realm="berth", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "admin: wrong token: it is not the content of the agent's admin.token-file")
		return false
	}
	return true
}

// allowedHost accepts loopback names, the listen address and the configured
// names, with any port. An IP address cannot be rebound to another server, so
// when the listener binds every address every IP address is accepted too: the
// request reached one of them.
func (a Access) allowedHost(host, listenHost string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" {
		return false
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.IsLoopback() {
			return true
		}
		if listen, err := netip.ParseAddr(listenHost); listenHost == "" || (err == nil && listen.IsUnspecified()) {
			return true
		}
	}
	return host == "localhost" || strings.EqualFold(host, listenHost) ||
		slices.ContainsFunc(a.AllowedHosts, func(name string) bool { return strings.EqualFold(strings.TrimSuffix(name, "."), host) })
}

// requestHost is the host part of a Host header: "[::1]:9900" is "::1".
func requestHost(hostPort string) string {
	if host, _, err := net.SplitHostPort(hostPort); err == nil {
		return host
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostPort, "["), "]")
}
