package admin

import (
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-lb/berth/agent/admin/admintest"
	"github.com/berth-lb/berth/agent/api"
	"github.com/berth-lb/berth/internal/browsertest"
)

// The dashboard's files need no token (they hold no data) but pass every
// other check, and carry the headers that keep other pages from framing them
// or running script in them.
func TestDashboardFiles(t *testing.T) {
	token, _ := openToken(t, testToken)
	url, _ := accessServer(t, Access{Token: token})
	for _, tt := range []struct{ path, contentType string }{
		{"/", "text/html; charset=utf-8"},
		{"/dashboard.js", "text/javascript; charset=utf-8"},
		{"/dashboard.css", "text/css; charset=utf-8"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			got := call(t, "GET", url+tt.path, "", nil, "")
			if got.code != 200 || got.header.Get("Content-Type") != tt.contentType {
				t.Fatalf("GET %s without a token = %d %q, want 200 %q", tt.path, got.code, got.header.Get("Content-Type"), tt.contentType)
			}
			csp := got.header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "form-action 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
				}
			}
			if got.header.Get("X-Frame-Options") != "DENY" || got.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Frame-Options %q, X-Content-Type-Options %q", got.header.Get("X-Frame-Options"), got.header.Get("X-Content-Type-Options"))
			}
			// The example source's node and groups are what the API would tell.
			for _, secret := range []string{"host-a", "users"} {
				if strings.Contains(got.body, secret) {
					t.Errorf("%s served without a token holds %q", tt.path, secret)
				}
			}
			checkError(t, call(t, "GET", url+tt.path, "", map[string]string{"Sec-Fetch-Site": "cross-site"}, ""), 403, "web pages of other origins")
			checkError(t, call(t, "GET", url+tt.path, "evil.example", nil, ""), 421, "is not a name of this admin API")
			checkError(t, call(t, "POST", url+tt.path, "", map[string]string{"Content-Type": "application/json"}, "{}"), 405, "not allowed")
		})
	}
	// Only those paths are open: the API, and any other file name, still need the token.
	for _, path := range []string{"/api/v1/status", "/index.html", "/dashboard.js/", "/dashboard/dashboard.js"} {
		checkError(t, call(t, "GET", url+path, "", nil, ""), 401, "needs the admin token")
	}
}

// The page has no inline script or style for the policy to refuse, and its
// script puts nothing into the page as markup.
func TestDashboardSourcesUseNoMarkupFromData(t *testing.T) {
	page, err := dashboardFiles.ReadFile("dashboard/index.html")
	if err != nil {
		t.Fatal(err)
	}
	tags := regexp.MustCompile(`<script([^>]*)>([^<]*)</script>`).FindAllSubmatch(page, -1)
	if len(tags) != strings.Count(string(page), "<script") {
		t.Errorf("index.html has a script element that is not <script src=...></script>")
	}
	for _, tag := range tags {
		if !strings.Contains(string(tag[1]), "src=") || strings.TrimSpace(string(tag[2])) != "" {
			t.Errorf("index.html has an inline script: %q", tag[0])
		}
	}
	if m := regexp.MustCompile(`\son[a-z]+\s*=|\sstyle\s*=|<style`).Find(page); m != nil {
		t.Errorf("index.html has an inline event handler or style: %q", m)
	}
	script, err := dashboardFiles.ReadFile("dashboard/dashboard.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setTimeout('", "setTimeout(\""} {
		if strings.Contains(string(script), sink) {
			t.Errorf("dashboard.js uses %s", sink)
		}
	}
}

// hostile is markup in every field an attacker who starts a container chooses.
const hostile = `<img src=x onerror=alert(1)>`

// In a real browser: the page asks for the token, shows what the API says,
// shows hostile names as text, and its drain button (after a confirmation)
// reaches the API through the guard: a same-origin call, JSON, with the token.
func TestDashboardInChromium(t *testing.T) {
	token, _ := openToken(t, testToken)
	group := api.Group{Name: "web", Algorithm: "round_robin", Protocol: "http", DeregistrationDelay: "30s", Targets: 2, States: map[string]int{"healthy": 2},
		Latency: api.Latency{Bounds: []float64{0.001}, Counts: []uint64{0, 0}}}
	src := &recordingSource{Source: admintest.Source{
		StatusDoc: api.Status{Node: "host-a", Version: "v9.9.9", Docker: api.Docker{Connected: true},
			Listeners: []api.Listener{{Name: "web", Protocol: "http", Address: "127.0.0.1:8000", Default: "forward web",
				Rules: []api.Rule{{Priority: 5, Paths: []string{"/" + hostile}, Action: "forward web", Source: "labels"}}}},
			Groups:        []api.Group{group},
			Skipped:       []api.Skipped{{Container: "cccccccccccc", Name: "bad", Reason: "label berth.rule.host: " + hostile}},
			LabelProblems: []api.LabelProblem{{Container: "dddddddddddd", Name: "lenient", Reason: "label berth.rule.path left out: " + hostile}},
			Nodes: []api.Node{{Name: "host-a@1", Node: "host-a", State: "alive", Self: true},
				{Name: "host-b@1", Node: "host-b", Address: "10.0.0.6:7946", State: "alive", Suspect: true}}},
		TargetList: []api.Target{
			{ID: "host-a/111111111111/8080", Group: "web", Node: "host-a", Address: "127.0.0.1:32768", State: "healthy", Container: hostile, Source: "docker"},
			{ID: "host-b/222222222222/8080", Group: "web", Node: "host-b", Address: "10.0.0.6:32768", State: "healthy", Suspect: true, Container: "app-2", Source: "gossip"},
		},
	}}
	server := httptest.NewServer(Handler(src, prometheus.NewRegistry(), Access{Token: token}))
	t.Cleanup(server.Close)

	page := browsertest.Start(t, 1280, 900)
	page.Do("open the page", chromedp.Navigate(server.URL+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	page.Do("give a wrong token", chromedp.SendKeys(chromedp.ID("token"), "not-the-token-at-all\r"))
	page.WaitText("login-error", "wrong token", false)
	page.Do("give the token", chromedp.SendKeys(chromedp.ID("token"), testToken+"\r"))
	page.WaitText("groups", "app-2", false)

	for _, id := range []string{"groups", "listeners", "skipped", "label-problems"} {
		page.WaitText(id, hostile, false)
	}
	if n := page.Eval(`String(document.querySelectorAll('img').length)`); n != "0" {
		t.Fatalf("the hostile name became markup: %s <img> elements in the page", n)
	}
	page.WaitText("node", "v9.9.9", false)
	if got := page.Eval(`document.querySelector('[data-group="web"] tbody').textContent`); !strings.Contains(got, "host-b") || !strings.Contains(got, "10.0.0.6:32768") {
		t.Fatalf("the target rows lack the host and address: %q", got)
	}
	// host-b misses this node's pings: its node and its target show it.
	if got := page.Eval(`document.querySelector('#fleet tbody tr:nth-child(2)').textContent`); !strings.Contains(got, "host-b") || !strings.Contains(got, "suspect") {
		t.Fatalf("the fleet row of the suspect node is %q, want host-b suspect", got)
	}
	for id, want := range map[string]string{"host-a/111111111111/8080": "healthy", "host-b/222222222222/8080": "healthy suspect"} {
		if got := page.Eval(`[...document.querySelectorAll('[data-group="web"] tbody tr')].find((r) => r.textContent.includes('` + id + `')).querySelector('td:nth-child(2)').textContent`); got != want {
			t.Errorf("the state cell of %s reads %q, want %q", id, got, want)
		}
	}
	// Only this node's own containers can be drained here.
	if n := page.Eval(`String(document.querySelectorAll('button[data-action="drain"]').length)`); n != "1" {
		t.Fatalf("%s drain buttons, want 1 (the other node's target drains on its own agent)", n)
	}

	drain := chromedp.CSS(`button[data-action="drain"][data-target="host-a/111111111111/8080"]`)
	page.Do("cancel a drain", chromedp.Click(drain), chromedp.WaitVisible(chromedp.ID("confirm")), chromedp.Click(chromedp.ID("confirm-cancel")),
		chromedp.WaitNotVisible(chromedp.ID("confirm")))
	if drained := src.drains(); len(drained) != 0 {
		t.Fatalf("a cancelled drain reached the API: %v", drained)
	}
	page.Do("drain", chromedp.Click(drain), chromedp.WaitVisible(chromedp.ID("confirm")))
	page.WaitText("confirm-text", hostile, false)
	page.Do("confirm", chromedp.Click(chromedp.ID("confirm-ok")))
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(src.drains(), []string{"host-a/111111111111/8080"}) {
		if time.Now().After(deadline) {
			t.Fatalf("the drain did not reach the API (drained %v); the page says %q", src.drains(), page.Eval(`document.getElementById("error").textContent`))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recordingSource records the drains that reach it; the server calls it on
// its own goroutines.
type recordingSource struct {
	admintest.Source
	mu      sync.Mutex
	drained []string
}

func (s *recordingSource) Drain(ref string) ([]api.Drain, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drained = append(s.drained, ref)
	return nil, nil
}

func (s *recordingSource) drains() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.drained)
}
