// Package dockerproxy is a read-only proxy of the Docker engine API for the
// agent. Discovery only lists, inspects and follows events, but the Docker
// socket lets whoever holds it run any container, which is root on the host:
// behind this proxy an agent that is taken over can read what discovery reads
// and change nothing.
package dockerproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"syscall"
)

// allowed are the endpoints the agent's discovery calls (and /_ping, /version
// with which the Docker client negotiates the API version), each path with or
// without its /v1.NN prefix. Names and IDs of containers are [a-zA-Z0-9_.-].
var allowed = regexp.MustCompile(`^(/v[0-9]+\.[0-9]+)?(/_ping|/version|/containers/json|/containers/[a-zA-Z0-9][a-zA-Z0-9_.-]*/json|/events)$`)

// Handler forwards the allowed GET and HEAD requests to the engine at docker
// (unix://PATH or tcp://HOST:PORT), streaming the answers as they come (the
// events stream never ends), and refuses every other request with 403 and a
// JSON message that names it, as the Docker client shows it. log receives a
// warning per refused request: something tried to act on the engine.
func Handler(docker string, log *slog.Logger) (http.Handler, error) {
	network, address, err := parseAddress(docker)
	if err != nil {
		return nil, fmt.Errorf("dockerproxy: --docker %s: %w", docker, err)
	}
	var dialer net.Dialer
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "docker"
			r.Out.Body, r.Out.ContentLength = http.NoBody, 0
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, address)
			},
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeMessage(w, http.StatusBadGateway, fmt.Sprintf("berth docker-proxy: the Docker engine at %s does not answer: %v", docker, err))
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// An escaped path could mean another path to the engine than the one
		// checked here; an upgrade would turn the connection into a tunnel.
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || r.URL.RawPath != "" || !allowed.MatchString(r.URL.Path) || r.Header.Get("Upgrade") != "" {
			log.Warn("dockerproxy: refused a Docker API call", "method", r.Method, "path", r.URL.Path)
			writeMessage(w, http.StatusForbidden, fmt.Sprintf("berth docker-proxy: %s %s is not allowed: this proxy forwards only GET and HEAD of /_ping, /version, /containers/json, /containers/{id}/json and /events", r.Method, r.URL.Path))
			return
		}
		proxy.ServeHTTP(w, r)
	}), nil
}

// Listen opens the proxy's socket at address: unix://PATH (a socket left by an
// earlier run is replaced; the new one is mode 0660 in the group of the
// Docker socket at docker, so the users that could use Docker can use it) or
// tcp://IP:PORT on loopback: container inspection shows every container's
// environment, which often holds secrets.
func Listen(address, docker string) (net.Listener, error) {
	network, path, err := parseAddress(address)
	if err != nil {
		return nil, fmt.Errorf("dockerproxy: --listen %s: %w", address, err)
	}
	if network == "tcp" {
		host, _, _ := net.SplitHostPort(path)
		if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("dockerproxy: --listen %s: listen on a unix socket or on loopback (tcp://127.0.0.1:PORT): the containers' environment it shows often holds secrets", address)
		}
		return net.Listen(network, path)
	}
	if info, err := os.Lstat(path); err == nil && info.Mode().Type() == os.ModeSocket {
		os.Remove(path)
	}
	ln, err := net.Listen(network, path)
	if err != nil {
		return nil, fmt.Errorf("dockerproxy: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("dockerproxy: %w", err)
	}
	if dockerNetwork, dockerPath, err := parseAddress(docker); err == nil && dockerNetwork == "unix" {
		if info, err := os.Stat(dockerPath); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				if err := os.Chown(path, -1, int(st.Gid)); err != nil {
					ln.Close()
					return nil, fmt.Errorf("dockerproxy: give %s the group of %s: %w", path, dockerPath, err)
				}
			}
		}
	}
	return ln, nil
}

// parseAddress reads unix://PATH or tcp://HOST:PORT.
func parseAddress(address string) (network, path string, err error) {
	u, err := url.Parse(address)
	switch {
	case err == nil && u.Scheme == "unix" && u.Host == "" && u.Path != "":
		return "unix", u.Path, nil
	case err == nil && u.Scheme == "tcp" && u.Host != "" && strings.Trim(u.Path, "/") == "":
		return "tcp", u.Host, nil
	}
	return "", "", fmt.Errorf("want unix:///PATH or tcp://HOST:PORT")
}

func writeMessage(w http.ResponseWriter, code int, message string) {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{message})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}
