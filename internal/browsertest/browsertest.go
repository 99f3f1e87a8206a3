// Package browsertest runs headless Chromium for a test and drives it over
// the Chrome DevTools protocol (chromedp). The browser is a real process in a
// process group of its own with its profile in the test's temporary
// directory; the group is killed when the test ends.
package browsertest

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"
)

// startTimeout bounds Chromium's start, until it says where DevTools listen.
const startTimeout = 30 * time.Second

// Names Chromium's binary has on Debian and elsewhere.
var binaries = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

var devtoolsURL = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// waitTimeout bounds every wait for the page to show something.
const waitTimeout = 15 * time.Second

// Page is the browser's tab; its methods fail the test when the browser does.
type Page struct {
	t testing.TB
	// Ctx is the chromedp context of the tab.
	Ctx context.Context
}

// Start runs headless Chromium with a window of width by height pixels and
// returns its first tab; the test's end closes it and kills the browser. A
// missing Chromium fails the test (scripts/ensure-tools.sh installs it; make
// test runs that).
func Start(t testing.TB, width, height int) *Page {
	t.Helper()
	path := ""
	for _, name := range binaries {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatalf("browsertest: none of %s is on PATH: run scripts/ensure-tools.sh (make test does), or apt-get install chromium", strings.Join(binaries, ", "))
	}
	args := []string{
		"--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
		"--disable-extensions", "--disable-background-networking", "--disable-sync",
		"--disable-component-update", "--disable-default-apps", "--disable-dev-shm-usage",
		"--password-store=basic", "--use-mock-keychain", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(),
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--window-size=" + strconv.Itoa(width) + "," + strconv.Itoa(height),
		"about:blank",
	}
	if os.Geteuid() == 0 {
		// Chromium refuses to run its sandbox as root.
		args = append(args, "--no-sandbox")
	}
	cmd := exec.Command(path, args...)
	// Its own process group, so the renderer and zygote processes die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("browsertest: start %s: %v", path, err)
	}
	// log is read once outputDone is closed.
	var log []string
	found := make(chan string, 1)
	outputDone := make(chan struct{})
	go func() {
		defer close(outputDone)
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			line := lines.Text()
			if m := devtoolsURL.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
			if len(log) < 200 {
				log = append(log, line)
			}
		}
	}()
	t.Cleanup(func() {
		// SIGTERM first: Chromium then ends and reaps its own children, which
		// would otherwise linger as zombies of whoever inherits them. Its
		// output ends when the last process of the group is gone.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		ended := waitClosed(outputDone, 5*time.Second)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		// A process that left the group could keep the output open.
		ended = ended || waitClosed(outputDone, 5*time.Second)
		cmd.Wait()
		if t.Failed() && ended {
			t.Logf("browsertest: chromium's output:\n%s", strings.Join(log, "\n"))
		}
	})
	var url string
	select {
	case url = <-found:
	case <-time.After(startTimeout):
		t.Fatalf("browsertest: %s did not open DevTools within %v", path, startTimeout)
	}
	allocCtx, cancelAlloc := remote.NewAllocator(context.Background(), url, remote.NoModifyURL)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		t.Fatalf("browsertest: connect to %s: %v", url, err)
	}
	return &Page{t: t, Ctx: ctx}
}

// Do runs actions; what names them in the failure.
func (p *Page) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.Ctx, actions...); err != nil {
		p.t.Fatalf("browsertest: %s: %v", what, err)
	}
}

// Eval evaluates a JavaScript expression whose value is a string.
func (p *Page) Eval(js string) string {
	p.t.Helper()
	out, err := chromedp.Run(p.Ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("browsertest: evaluate %s: %v", js, err)
	}
	return out
}

// WaitText waits until the text of the element with the given id contains
// want (gone: does not contain it).
func (p *Page) WaitText(id, want string, gone bool) {
	p.t.Helper()
	js := `(document.getElementById(` + strconv.Quote(id) + `) || {textContent: ''}).textContent`
	deadline := time.Now().Add(waitTimeout)
	for strings.Contains(p.Eval(js), want) == gone {
		if time.Now().After(deadline) {
			verb := "show"
			if gone {
				verb = "stop showing"
			}
			p.t.Fatalf("browsertest: #%s does not %s %q within %v; the page shows:\n%s", id, verb, want, waitTimeout, p.Eval(`document.body.innerText`))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitClosed reports whether ch closed within d.
func waitClosed(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}
