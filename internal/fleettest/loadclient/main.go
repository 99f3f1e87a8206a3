// Command loadclient sends HTTP GET requests on a steady schedule and prints what
// happened as one JSON object on stdout. The fleet harness runs it with nsenter
// inside a simulated host's network namespace, because the test process itself
// lives in the root namespace, which cannot reach the simulated hosts.
//
// Every other request uses a shared keep-alive connection pool; the others open
// a new connection each, so both ways a client reaches a balancer are measured.
//
//	loadclient -url http://10.213.7.13:8000/ -rate 200 -duration 5s -timeout 3s
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/berth-lb/berth/internal/fleettest/loadreport"
)

// maxFailures bounds the failures listed one by one; the counts cover all.
const maxFailures = 50

func main() {
	url := flag.String("url", "", "URL to GET (required)")
	rate := flag.Int("rate", 200, "requests per second")
	duration := flag.Duration("duration", 5*time.Second, "how long to send requests")
	timeout := flag.Duration("timeout", 3*time.Second, "timeout of one request")
	flag.Parse()
	if *url == "" || *rate <= 0 || *duration <= 0 || *timeout <= 0 {
		fmt.Fprintln(os.Stderr, "loadclient: -url is required; -rate, -duration and -timeout must be more than 0")
		os.Exit(2)
	}
	result := run(*url, *rate, *duration, *timeout)
	if err := json.NewEncoder(os.Stdout).Encode(result); err != nil {
		fmt.Fprintf(os.Stderr, "loadclient: write result: %v\n", err)
		os.Exit(1)
	}
}

func run(url string, rate int, duration, timeout time.Duration) loadreport.Result {
	keepAlive := &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	fresh := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}

	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		result = loadreport.Result{Answers: map[string]int{}, Started: time.Now().UnixNano()}
	)
	record := func(sent time.Time, answer string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			result.OK++
			result.Answers[answer]++
			return
		}
		result.Failed++
		s, ended := sent.UnixNano(), time.Now().UnixNano()
		if result.FirstFailureEnded == 0 || ended < result.FirstFailureEnded {
			result.FirstFailureEnded = ended
		}
		if result.FirstFailureSent == 0 || s < result.FirstFailureSent {
			result.FirstFailureSent = s
		}
		if s > result.LastFailureSent {
			result.LastFailureSent = s
		}
		if len(result.Failures) < maxFailures {
			result.Failures = append(result.Failures, loadreport.Failure{Sent: s, Ended: ended, Error: err.Error()})
		}
	}

	// The schedule is fixed: request i is due at Started + i/rate. A client
	// starved of CPU (a loaded test machine) sends what it owes in a burst
	// when it runs again instead of skipping ticks, so a short count means
	// the balancer failed or stalled, never that the client fell behind.
	total := int(duration.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	started := time.Unix(0, result.Started)
	for i := 0; i < total; i++ {
		if wait := time.Until(started.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		client := keepAlive
		if i%2 == 1 {
			client = fresh
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := time.Now()
			answer, err := get(client, url)
			record(sent, answer, err)
		}()
	}
	result.Sent = total
	wg.Wait()
	result.Finished = time.Now().UnixNano()
	return result
}

// get fetches url and returns the first word of a 200 answer's body.
func get(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	fields := strings.Fields(string(body))
	if len(fields) == 0 {
		return "", errors.New("empty body")
	}
	return fields[0], nil
}
