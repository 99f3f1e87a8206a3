package admin

import (
	"embed"
	"net/http"
	"path"
)

// The dashboard is three static files; its script reads the JSON API.
//
//go:embed dashboard
var dashboardFiles embed.FS

// dashboardPaths maps the dashboard's paths to its files. They hold no data,
// so they are served without the token (docs/dashboard.md): the page asks for
// it and sends it with each call of its script.
var dashboardPaths = map[string]string{
	"/":              "dashboard/index.html",
	"/dashboard.js":  "dashboard/dashboard.js",
	"/dashboard.css": "dashboard/dashboard.css",
}

// dashboardCSP lets the page load its own script, style and API answers and
// nothing else: no inline script (API data that slipped into the DOM as markup
// could not run), no form posting the token anywhere, no framing (clickjacking
// of the drain buttons).
const dashboardCSP = "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

var dashboardTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

func serveDashboard(w http.ResponseWriter, r *http.Request) {
	name := dashboardPaths[r.URL.Path]
	body, err := dashboardFiles.ReadFile(name)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "admin: dashboard file "+name+" is not in the binary (a bug: please report it)")
		return
	}
	h := w.Header()
	h.Set("Content-Type", dashboardTypes[path.Ext(name)])
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// The files change with the binary: a browser asks again after an upgrade.
	h.Set("Cache-Control", "no-cache")
	w.Write(body)
}
