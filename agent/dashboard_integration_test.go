package agent

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/docker/docker/api/types/container"

	"github.com/berth-lb/berth/agent/api"
	"github.com/berth-lb/berth/internal/browsertest"
	"github.com/berth-lb/berth/internal/dockertest"
	"github.com/berth-lb/berth/internal/freeport"
	"github.com/berth-lb/berth/internal/loadtest"
)

// The dashboard in headless Chromium against an agent with real containers:
// it shows the groups and each container, a stopped container draining and
// then gone, and a drain (and undrain) clicked on the page changes the
// target's state in the API. BERTH_DASHBOARD_SCREENSHOT=FILE also saves a
// 1280 px screenshot under load (docs/dashboard.md).
func TestDashboardFollowsContainers(t *testing.T) {
	cli := dockertest.Client(t)
	image := dockertest.BuildImage(t, cli, "github.com/berth-lb/berth/examples/app")
	prefix := labelPrefix()
	token := prefix + "-dashboard-token"
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	web, adminAddr := freeport.TCP(t), freeport.TCP(t)
	ra := startAgentWith(t, web, labelAgentConfig(prefix, "{listen: "+adminAddr+", token-file: "+tokenFile+"}", web,
		"  api: {algorithm: least_outstanding_requests, deregistration-delay: 10s}\n"))

	names := []string{"web-1-" + prefix, "web-2-" + prefix, "api-1-" + prefix}
	var ids []string
	for _, name := range names[:2] {
		ids = append(ids, dockertest.Run(t, cli, dockertest.RunOptions{Image: image, Name: name, Labels: labelled(prefix), Ports: []string{"8080/tcp"}, StopTimeout: 30}))
	}
	ids = append(ids, dockertest.Run(t, cli, dockertest.RunOptions{Image: image, Name: names[2], Ports: []string{"8080/tcp"}, StopTimeout: 30,
		Labels: map[string]string{prefix + ".group": "api", prefix + ".rule.path": "/api/*", prefix + ".rule.priority": "10"}}))

	page := browsertest.Start(t, 1280, 900)
	page.Do("open the dashboard", chromedp.Navigate("http://"+adminAddr+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	page.Do("give the token", chromedp.SendKeys(chromedp.ID("token"), token+"\r"))
	for _, name := range names {
		page.WaitText("groups", name, false)
	}
	page.WaitText("listeners", "path /api/*", false)

	if path := os.Getenv("BERTH_DASHBOARD_SCREENSHOT"); path != "" {
		screenshot(t, page, ra.url, path)
	}

	t.Run("a stopped container drains, then is gone", func(t *testing.T) {
		victim, name := ids[0], names[0]
		id := targetOf(t, ra.agent, name)
		// Requests in flight on the victim keep its drain going while they last:
		// 6 s, so that a page on a loaded machine polls it several times.
		var held sync.WaitGroup
		codes := make(chan int, 8)
		for range cap(codes) {
			held.Add(1)
			go func() {
				defer held.Done()
				codes <- status(ra.url + "/sleep?ms=6000")
			}()
		}
		dockertest.Eventually(t, 5*time.Second, func() bool { return inFlight(ra.agent, id) > 0 }, "no request in flight to %s", id)
		stopped := make(chan error, 1)
		go func() { stopped <- cli.ContainerStop(context.Background(), victim, container.StopOptions{}) }()

		page.WaitText("drains", id, false)
		row := `Array.from(document.querySelectorAll('#groups tr')).filter((r) => r.textContent.includes(` + strconv.Quote(name) + `)).map((r) => r.textContent).join()`
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(page.Eval(row), "draining") {
			if time.Now().After(deadline) {
				t.Fatalf("the stopping container's row does not show draining: %q", page.Eval(row))
			}
			time.Sleep(20 * time.Millisecond)
		}
		page.WaitText("groups", name, true)
		page.WaitText("drains", id, true)
		held.Wait()
		close(codes)
		for code := range codes {
			if code != http.StatusOK {
				t.Errorf("a request in flight during the stop got %d", code)
			}
		}
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a drain clicked on the page drains the target, an undrain ends it", func(t *testing.T) {
		id := targetOf(t, ra.agent, names[1])
		button := func(action string) chromedp.CSS {
			return chromedp.CSS(`button[data-action="` + action + `"][data-target="` + id + `"]`)
		}
		page.Do("click drain and confirm", chromedp.Click(button("drain")), chromedp.WaitVisible(chromedp.ID("confirm")),
			chromedp.Click(chromedp.ID("confirm-ok")), chromedp.WaitNotVisible(chromedp.ID("confirm")))
		dockertest.Eventually(t, 5*time.Second, func() bool {
			return slices.ContainsFunc(ra.agent.Drains(), func(d api.Drain) bool { return d.Target == id && d.Requested }) && !healthy(ra.agent, id)
		}, "the drain clicked on the page did not drain %s: drains %+v", id, ra.agent.Drains())
		page.Do("click undrain and confirm", chromedp.Click(button("undrain")), chromedp.WaitVisible(chromedp.ID("confirm")),
			chromedp.Click(chromedp.ID("confirm-ok")), chromedp.WaitNotVisible(chromedp.ID("confirm")))
		dockertest.Eventually(t, 5*time.Second, func() bool { return healthy(ra.agent, id) && len(ra.agent.Drains()) == 0 },
			"the undrain clicked on the page did not bring %s back: drains %+v", id, ra.agent.Drains())
		page.WaitText("drains", id, true)
	})
}

// screenshot saves the page at 1280 px wide, whole, after a few seconds of
// load so that rates and latencies show.
func screenshot(t *testing.T, page *browsertest.Page, url, path string) {
	t.Helper()
	web := loadtest.Start(url+"/sleep?ms=3", 120)
	api := loadtest.Start(url+"/api/users", 40)
	time.Sleep(6 * time.Second)
	png, err := chromedp.Run(page.Ctx, chromedp.FullScreenshot(100))
	web.Stop()
	api.Stop()
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the dashboard in %s", path)
}

func targetOf(t *testing.T, a *Agent, container string) string {
	t.Helper()
	for _, tg := range a.Targets() {
		if tg.Container == container {
			return tg.ID
		}
	}
	t.Fatalf("no target of container %s", container)
	return ""
}

func inFlight(a *Agent, id string) int64 {
	for _, tg := range a.Targets() {
		if tg.ID == id {
			return tg.InFlight
		}
	}
	return 0
}

func healthy(a *Agent, id string) bool {
	return slices.ContainsFunc(a.Targets(), func(tg api.Target) bool { return tg.ID == id && tg.State == "healthy" })
}
