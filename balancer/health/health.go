// Package health runs active health checks with the semantics of an AWS ALB
// target group: every Interval a check (an HTTP GET of Path that passes on a
// status of Matcher, the same over TLS, or a TCP connect) with Timeout; a new
// target is healthy after ONE passing check; a healthy target turns unhealthy
// after Unhealthy failures in a row and back after Healthy passes in a row.
// The agent runs checks for the targets its host owns and shares the results.
package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-lb/berth/internal/backstop"
	"github.com/berth-lb/berth/internal/matcher"
)

// States of a checked target, with ALB's names.
const (
	Initial   = "initial"
	Healthy   = "healthy"
	Unhealthy = "unhealthy"
)

// Reason codes, ALB's where ALB has one.
const (
	ReasonInitial      = "Elb.InitialHealthChecking"
	ReasonTimeout      = "Target.Timeout"
	ReasonCodeMismatch = "Target.ResponseCodeMismatch"
	ReasonFailedChecks = "Target.FailedHealthChecks"
	userAgent          = "berth-health-checker/1"
	// initialRetry paces the checks of a target that never passed yet.
	initialRetry        = time.Second
	maxResponseBodyRead = 4 << 10
)

// Check is one group's health check.
type Check struct {
	// Protocol is "http", "https" or "tcp".
	Protocol string
	Path     string
	// Port is the port to check; 0 checks the target's own port.
	Port      int
	Interval  time.Duration
	Timeout   time.Duration
	Healthy   int
	Unhealthy int
	Matcher   matcher.Matcher
}

// Target is a target to check.
type Target struct {
	ID      string
	Address string // ip:port
	Check   Check
}

// Result is the current verdict on a target.
type Result struct {
	State  string
	Reason string
	// Since is when State began; Checked when the last check ended.
	Since, Checked time.Time
	// Detail is the last failure in words, e.g. "status 503 not in 200-299".
	Detail string
}

// Checker runs one loop per target. Create it with New; it is safe for
// concurrent use.
type Checker struct {
	log     *slog.Logger
	changes chan struct{}
	passes  uint64
	fails   uint64
	// panics counts the checks that panicked (each failed).
	panics atomic.Uint64

	mu      sync.Mutex
	loops   map[string]*loop
	results map[string]Result
}

type loop struct {
	target Target
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Checker with no target.
func New(log *slog.Logger) *Checker {
	if log == nil {
		log = slog.Default()
	}
	return &Checker{log: log, changes: make(chan struct{}, 1), loops: map[string]*loop{}, results: map[string]Result{}}
}

// Changes receives a value whenever a result changed state.
func (c *Checker) Changes() <-chan struct{} { return c.changes }

// Sync makes targets the set of checked targets: it starts a loop for each
// new one (its first check runs at once), restarts one whose address or check
// changed, and stops those gone.
func (c *Checker) Sync(targets []Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	want := make(map[string]Target, len(targets))
	for _, t := range targets {
		want[t.ID] = t
	}
	for id, l := range c.loops {
		if t, ok := want[id]; !ok || !reflect.DeepEqual(t, l.target) {
			l.cancel()
			delete(c.loops, id)
			if !ok {
				delete(c.results, id)
			}
		}
	}
	for id, t := range want {
		if _, ok := c.loops[id]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		l := &loop{target: t, cancel: cancel, done: make(chan struct{})}
		c.loops[id] = l
		if _, ok := c.results[id]; !ok {
			c.results[id] = Result{State: Initial, Reason: ReasonInitial, Since: time.Now()}
		}
		go c.run(ctx, l)
	}
}

// Result returns the verdict on a target, if it is checked.
func (c *Checker) Result(id string) (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.results[id]
	return r, ok
}

// Counts returns how many checks passed and failed so far.
func (c *Checker) Counts() (passed, failed uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.passes, c.fails
}

// Close stops every loop.
func (c *Checker) Close() {
	c.mu.Lock()
	loops := c.loops
	c.loops = map[string]*loop{}
	c.mu.Unlock()
	for _, l := range loops {
		l.cancel()
		<-l.done
	}
}

func (c *Checker) run(ctx context.Context, l *loop) {
	defer close(l.done)
	t := l.target
	var passes, fails int
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		reason, detail := c.check(ctx, t)
		if ctx.Err() != nil {
			return
		}
		if reason == "" {
			passes, fails = passes+1, 0
		} else {
			passes, fails = 0, fails+1
		}
		next := t.Check.Interval
		if c.record(t, passes, fails, reason, detail) == Initial {
			// A container is often not listening yet at its first check: a new
			// target is checked every second until it passes, so it does not
			// wait a whole interval (ALB's is 30 s) for its first traffic.
			next = min(next, initialRetry)
		}
		timer.Reset(next)
	}
}

// testHook, set by tests only (nil in production), is called before every
// check: a test panics in it to prove the backstop.
var testHook atomic.Pointer[func(Target)]

// check runs one probe. A panic in it, a bug, fails that check: ending the
// target's loop instead would leave the target unchecked, in its last state,
// until it is removed.
func (c *Checker) check(ctx context.Context, t Target) (reason, detail string) {
	reason, detail = ReasonFailedChecks, "the check panicked (a bug: the agent's log has its stack)"
	defer backstop.Recover(c.log, &c.panics, nil, "target", t.ID)
	if h := testHook.Load(); h != nil {
		(*h)(t)
	}
	return probe(ctx, t)
}

// Panics returns how many checks panicked.
func (c *Checker) Panics() uint64 { return c.panics.Load() }

// record applies one check's outcome to the target's state and returns it.
func (c *Checker) record(t Target, passes, fails int, reason, detail string) string {
	now := time.Now()
	c.mu.Lock()
	if reason == "" {
		c.passes++
	} else {
		c.fails++
	}
	if _, ok := c.loops[t.ID]; !ok {
		c.mu.Unlock()
		return "" // stopped while checking
	}
	r := c.results[t.ID]
	r.Checked = now
	next := r.State
	switch {
	case reason == "" && r.State == Initial:
		next = Healthy // ALB: one passing check makes a new target healthy
	case reason == "" && r.State == Unhealthy && passes >= t.Check.Healthy:
		next = Healthy
	case reason != "" && r.State != Unhealthy && fails >= t.Check.Unhealthy:
		next = Unhealthy
	}
	if reason != "" {
		r.Detail = detail
	}
	changed := next != r.State
	if changed {
		r.State, r.Since = next, now
		switch next {
		case Healthy:
			r.Reason, r.Detail = "", ""
		case Unhealthy:
			r.Reason = reason
		}
	}
	c.results[t.ID] = r
	c.mu.Unlock()
	if changed {
		c.log.Info("health: target "+next, "target", t.ID, "reason", r.Reason, "detail", r.Detail)
		select {
		case c.changes <- struct{}{}:
		default:
		}
	}
	return next
}

// probe runs one check and returns "" when it passed, else a reason code and
// the failure in words.
func probe(ctx context.Context, t Target) (reason, detail string) {
	ck := t.Check
	addr := t.Address
	if ck.Port != 0 {
		host, _, err := net.SplitHostPort(t.Address)
		if err != nil {
			return ReasonFailedChecks, err.Error()
		}
		addr = net.JoinHostPort(host, strconv.Itoa(ck.Port))
	}
	ctx, cancel := context.WithTimeout(ctx, ck.Timeout)
	defer cancel()
	if ck.Protocol == "tcp" {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return failure(err)
		}
		conn.Close()
		return "", ""
	}
	scheme := "http"
	transport := &http.Transport{DisableKeepAlives: true} // like ALB: one connection per check
	if ck.Protocol == "https" {
		scheme = "https"
		transport.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // ALB does not verify target certificates either
	}
	defer transport.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+ck.Path, nil)
	if err != nil {
		return ReasonFailedChecks, err.Error()
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := transport.RoundTrip(req)
	if err != nil {
		return failure(err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBodyRead))
	resp.Body.Close()
	if !ck.Matcher.Match(resp.StatusCode) {
		return ReasonCodeMismatch, fmt.Sprintf("status %d not in %s", resp.StatusCode, ck.Matcher)
	}
	return "", ""
}

func failure(err error) (string, string) {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return ReasonTimeout, "no answer within the timeout"
	}
	return ReasonFailedChecks, err.Error()
}
