// Package loadtest sends a steady HTTP load from a Go client, for tests that
// must show that no request fails while something changes (a container stops,
// a rollout runs). Half of the requests reuse keep-alive connections, half
// open a new connection each. Loopback only.
package loadtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Load is a running load; Stop ends it and returns its results.
type Load struct {
	ok, failed atomic.Int64
	cancel     context.CancelFunc
	wg         sync.WaitGroup

	mu      sync.Mutex
	errs    []string
	answers map[string]int
	last    map[string]time.Time
}

// Result is what a load saw.
type Result struct {
	OK, Failed int64
	// Errors are the first few failures in words.
	Errors []string
	// Answers counts the 200 answers by their first line (the example app
	// answers "<name> <version>").
	Answers map[string]int
	// LastSeen is when each answer was last received.
	LastSeen map[string]time.Time
}

// Start sends perSecond GET requests a second to url, on a fixed schedule,
// until Stop.
func Start(url string, perSecond int) *Load { return StartMethod(http.MethodGet, url, perSecond) }

// StartMethod is Start with another method. A POST (with a small body) is
// never retried by a balancer once sent: it shows what a client really loses.
func StartMethod(method, url string, perSecond int) *Load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{cancel: cancel, answers: map[string]int{}, last: map[string]time.Time{}}
	keepAlive := &http.Client{Timeout: 10 * time.Second}
	fresh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	interval := time.Second / time.Duration(perSecond)
	started := time.Now()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		// Request i is due at started + i*interval: a load starved of CPU
		// catches up in a burst instead of skipping ticks, so a test's count
		// of answers measures the balancer, not the client.
		timer := time.NewTimer(0)
		defer timer.Stop()
		for i := 0; ; i++ {
			timer.Reset(time.Until(started.Add(time.Duration(i) * interval)))
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			c := keepAlive
			if i%2 == 1 {
				c = fresh
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.one(c, method, url)
			}()
		}
	}()
	return l
}

func (l *Load) one(c *http.Client, method, url string) {
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader("payload")
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		panic("loadtest: " + err.Error())
	}
	resp, err := c.Do(req)
	var answer []byte
	if err == nil {
		answer, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(answer)))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed.Add(1)
		if len(l.errs) < 5 {
			l.errs = append(l.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
		}
		return
	}
	l.ok.Add(1)
	first, _, _ := strings.Cut(string(answer), "\n")
	l.answers[first]++
	l.last[first] = time.Now()
}

// Snapshot returns the results so far without stopping.
func (l *Load) Snapshot() Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := Result{OK: l.ok.Load(), Failed: l.failed.Load(), Errors: append([]string(nil), l.errs...), Answers: map[string]int{}, LastSeen: map[string]time.Time{}}
	for k, v := range l.answers {
		r.Answers[k] = v
	}
	for k, v := range l.last {
		r.LastSeen[k] = v
	}
	return r
}

// Stop ends the load, waits for the requests in flight and returns the results.
func (l *Load) Stop() Result {
	l.cancel()
	l.wg.Wait()
	return l.Snapshot()
}
