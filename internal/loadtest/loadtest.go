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

// Start sends perSecond GET requests a second to url until Stop.
func Start(url string, perSecond int) *Load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{cancel: cancel, answers: map[string]int{}, last: map[string]time.Time{}}
	keepAlive := &http.Client{Timeout: 10 * time.Second}
	fresh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(time.Second / time.Duration(perSecond))
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			c := keepAlive
			if i%2 == 1 {
				c = fresh
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.one(c, url)
			}()
		}
	}()
	return l
}

func (l *Load) one(c *http.Client, url string) {
	resp, err := c.Get(url)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed.Add(1)
		if len(l.errs) < 5 {
			l.errs = append(l.errs, err.Error())
		}
		return
	}
	l.ok.Add(1)
	answer, _, _ := strings.Cut(string(body), "\n")
	l.answers[answer]++
	l.last[answer] = time.Now()
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
