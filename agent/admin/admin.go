// Package admin serves the agent's admin HTTP API: health, Prometheus metrics and the
// JSON documents of package api that the CLI (berth status, berth targets) reads.
package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/berth-lb/berth/agent/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Source is what the agent exposes to the admin API. Implementations must be safe for
// concurrent use and cheap (called per request).
type Source interface {
	Status() api.Status
	Groups() []api.Group
	Targets() []api.Target
	Nodes() []api.Node
	// Drains lists this node's draining targets; Drain starts draining the
	// targets a reference names (an ID, a container ID or name) and Undrain
	// ends a drain Drain started. Both fail with an error wrapping
	// ErrNotFound when nothing matches.
	Drains() []api.Drain
	Drain(ref string) ([]api.Drain, error)
	Undrain(ref string) error
}

// ErrNotFound marks a Source error that answers 404.
var ErrNotFound = errors.New("not found")

// Handler returns the admin API:
//
//	GET /                        the dashboard (docs/dashboard.md), with
//	GET /dashboard.js, .css      its script and style
//	GET /healthz                 200 "ok\n"
//	GET /metrics                 Prometheus exposition of gatherer
//	GET /api/v1/status           api.Status
//	GET /api/v1/groups           []api.Group, sorted by name
//	GET /api/v1/targets[?group=] []api.Target, sorted by group then id
//	GET /api/v1/nodes            []api.Node, this agent first
//
// JSON answers are indented and lists are never null. An unknown path answers 404 and a
// known path with another method than GET or HEAD answers 405 with an Allow header; both,
// like every non-2xx answer, carry an api.Error body. Every request passes access's
// checks first. gatherer must not be nil.
func Handler(src Source, gatherer prometheus.Gatherer, access Access) http.Handler {
	mux := http.NewServeMux()
	routes := []struct {
		path    string
		handler http.Handler
	}{
		{"/{$}", http.HandlerFunc(serveDashboard)},
		{"/dashboard.js", http.HandlerFunc(serveDashboard)},
		{"/dashboard.css", http.HandlerFunc(serveDashboard)},
		{"/healthz", http.HandlerFunc(serveHealth)},
		{"/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})},
		{"/api/v1/status", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, normalizeStatus(src.Status()))
		})},
		{"/api/v1/groups", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, sortedGroups(src.Groups()))
		})},
		{"/api/v1/targets", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			serveTargets(w, r, src)
		})},
		{"/api/v1/nodes", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, nonNil(src.Nodes()))
		})},
		{"/api/v1/drains", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, nonNil(src.Drains()))
		})},
	}
	for _, route := range routes {
		mux.Handle("GET "+route.path, route.handler)
		// The method-less pattern is less specific than the GET one, so it only sees the
		// other methods; ServeMux's own 405 would answer in plain text.
		mux.HandleFunc(route.path, serveMethodNotAllowed)
	}
	mux.HandleFunc("POST /api/v1/drains", func(w http.ResponseWriter, r *http.Request) {
		var req api.DrainRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || req.Target == "" {
			writeError(w, http.StatusBadRequest, `admin: the body must be JSON like {"target": "<target ID, container ID or name>"}`)
			return
		}
		drains, err := src.Drain(req.Target)
		if err != nil {
			writeSourceError(w, err)
			return
		}
		writeJSON(w, http.StatusAccepted, nonNil(drains))
	})
	mux.HandleFunc("DELETE /api/v1/drains/{ref...}", func(w http.ResponseWriter, r *http.Request) {
		if err := src.Undrain(r.PathValue("ref")); err != nil {
			writeSourceError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("admin: no endpoint %s; see docs/api.md for the list", r.URL.Path))
	})
	return access.guard(mux)
}

func writeSourceError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, ErrNotFound) {
		code = http.StatusNotFound
	}
	writeError(w, code, err.Error())
}

func serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, "ok\n")
}

func serveMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, HEAD")
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("admin: method %s not allowed on %s; use GET", r.Method, r.URL.Path))
}

func serveTargets(w http.ResponseWriter, r *http.Request, src Source) {
	targets := sortedTargets(src.Targets())
	group := r.URL.Query().Get("group")
	if group == "" {
		writeJSON(w, http.StatusOK, targets)
		return
	}
	matching := []api.Target{}
	for _, target := range targets {
		if target.Group == group {
			matching = append(matching, target)
		}
	}
	if len(matching) == 0 {
		// A known group may have no target; only a name the agent has never heard of is
		// a mistake worth reporting.
		known := groupNames(src.Groups())
		if !slices.Contains(known, group) {
			writeError(w, http.StatusNotFound, unknownGroupMessage(group, known))
			return
		}
	}
	writeJSON(w, http.StatusOK, matching)
}

func unknownGroupMessage(group string, known []string) string {
	if len(known) == 0 {
		return fmt.Sprintf("admin: no target group %q; this agent knows no group yet", group)
	}
	return fmt.Sprintf("admin: no target group %q; known groups: %s", group, strings.Join(known, ", "))
}

func groupNames(groups []api.Group) []string {
	names := make([]string, 0, len(groups))
	for _, group := range groups {
		names = append(names, group.Name)
	}
	slices.Sort(names)
	return names
}

// normalizeStatus sorts the groups and skipped containers and turns nil lists into empty
// ones, so scripts always see arrays. It copies what it changes: the Source may share
// its slices with other requests.
func normalizeStatus(status api.Status) api.Status {
	listeners := make([]api.Listener, len(status.Listeners))
	copy(listeners, status.Listeners)
	for i := range listeners {
		if listeners[i].Rules == nil {
			listeners[i].Rules = []api.Rule{}
		}
	}
	status.Listeners = listeners
	status.Groups = sortedGroups(status.Groups)
	skipped := make([]api.Skipped, len(status.Skipped))
	copy(skipped, status.Skipped)
	slices.SortStableFunc(skipped, func(a, b api.Skipped) int {
		return strings.Compare(a.Name+"\x00"+a.Container, b.Name+"\x00"+b.Container)
	})
	status.Skipped = skipped
	status.Nodes = nonNil(status.Nodes)
	return status
}

func nonNil[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

func sortedGroups(groups []api.Group) []api.Group {
	sorted := make([]api.Group, len(groups))
	copy(sorted, groups)
	for i := range sorted {
		if sorted[i].States == nil {
			sorted[i].States = map[string]int{}
		}
	}
	slices.SortStableFunc(sorted, func(a, b api.Group) int { return strings.Compare(a.Name, b.Name) })
	return sorted
}

func sortedTargets(targets []api.Target) []api.Target {
	sorted := make([]api.Target, len(targets))
	copy(sorted, targets)
	slices.SortStableFunc(sorted, func(a, b api.Target) int {
		if c := strings.Compare(a.Group, b.Group); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return sorted
}

func writeError(w http.ResponseWriter, code int, message string) {
	writeJSON(w, code, api.Error{Error: message})
}

func writeJSON(w http.ResponseWriter, code int, document any) {
	body, err := json.MarshalIndent(document, "", "  ")
	if err != nil {
		// Only a time outside the years 0-9999 fails to encode; say so rather than
		// answer a truncated document.
		code = http.StatusInternalServerError
		body, _ = json.Marshal(api.Error{Error: "admin: encode answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}
