// Package accesslog writes the access log: one JSON line per L4 connection or
// UDP flow (Record), and the HTTP listeners' lines, rendered by the HTTP proxy
// and queued whole (WriteLine). Lines go through a bounded queue to one writer
// goroutine, so a slow or stuck destination drops lines (counted) and never
// holds up a request or a connection.
//
// Write and WriteLine are called on the request path: they must not block on
// the destination nor allocate beyond the line's copy into the queue. It knows
// nothing of listeners or routes and imports no other balancer package.
package accesslog

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// The access log goes through a bounded queue to one writer goroutine, so a
// slow or blocked destination (a full pipe to stdout, a stalled disk) never
// holds up a request: a line that does not fit the queue is dropped and
// counted (berth_access_log_dropped_total).
const (
	// accessLogFlush is how often the writer writes what is queued when the
	// queue stays below accessLogBatch.
	accessLogFlush = time.Second
	// accessLogBatch is how much queued wakes the writer before its tick:
	// writes go out in batches of about this size under load.
	accessLogBatch = 64 << 10
	// accessLogQueue bounds the bytes of lines waiting for the writer, about
	// 8,000 lines of HTTP: 160 ms of 50,000 requests a second while the
	// destination takes nothing. The writer holds a second buffer as large
	// while it writes, so the log costs at most twice this.
	accessLogQueue = 4 << 20
	// accessLogCloseWait bounds how long closing the log (shutdown, a new
	// destination) waits for the queued lines to be written.
	accessLogCloseWait = 2 * time.Second
)

// Destinations besides a file path.
const (
	Stdout = "stdout"
	Off    = "off"
)

// Record is one access-log line: one L4 connection or UDP flow.
type Record struct {
	Time          time.Time     `json:"time"`
	Listener      string        `json:"listener"`
	Protocol      string        `json:"protocol"`
	Client        string        `json:"client"`
	SNI           string        `json:"sni,omitempty"`
	Group         string        `json:"group,omitempty"`
	Target        string        `json:"target,omitempty"`
	TargetAddress string        `json:"target_address,omitempty"`
	Duration      time.Duration `json:"-"`
	DurationMS    float64       `json:"duration_ms"`
	BytesIn       int64         `json:"bytes_in"`
	BytesOut      int64         `json:"bytes_out"`
	// Result is ok, idle_timeout, reset, terminated, no_target,
	// connect_failed, connect_timeout, target_reset, bad_client_hello or
	// tls_handshake_failed.
	Result string `json:"result"`
}

// Logger queues access-log lines for its writer goroutine. The
// connection path copies a line into the queue under a mutex, nothing more:
// no allocation, no system call.
type Logger struct {
	out   io.Writer
	file  *os.File // nil for stdout
	limit int      // accessLogQueue; smaller in tests
	// batch is how much queued wakes the writer: accessLogBatch, or half
	// a queue smaller than twice that.
	batch int
	// dropped is the balancer's counter: it outlives a logger replaced by a
	// new destination.
	dropped *atomic.Uint64

	mu      sync.Mutex
	pending []byte // lines waiting for the writer
	// wake tells the writer that pending reached batch.
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// Open opens dest: Stdout, Off or "" (nil), or a
// file path, appended to. Lines that find the queue full count in dropped.
func Open(dest string, dropped *atomic.Uint64) (*Logger, error) {
	switch dest {
	case "", Off:
		return nil, nil
	case Stdout:
		return New(os.Stdout, nil, accessLogQueue, dropped), nil
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("balancer: access log: %w", err)
	}
	return New(f, f, accessLogQueue, dropped), nil
}

// New starts the writer of a log to out, with a queue of limit bytes.
func New(out io.Writer, file *os.File, limit int, dropped *atomic.Uint64) *Logger {
	// Both buffers are allocated whole, so queueing never allocates; the
	// pages of the part never used are never touched, so cost no memory.
	a := &Logger{out: out, file: file, limit: limit, batch: min(accessLogBatch, limit/2), dropped: dropped, pending: make([]byte, 0, limit),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go a.writeLoop()
	return a
}

// writeLoop writes the queue out: at every tick, when it reaches a batch,
// and once more when the log closes. It swaps the queue with a spare buffer
// and writes without the mutex, so lines keep queueing while it waits on
// the destination.
func (a *Logger) writeLoop() {
	defer close(a.done)
	tick := time.NewTicker(accessLogFlush)
	defer tick.Stop()
	spare := make([]byte, 0, a.limit)
	for {
		stopped := false
		select {
		case <-a.stop:
			stopped = true
		case <-tick.C:
		case <-a.wake:
		}
		a.mu.Lock()
		out := a.pending
		a.pending = spare[:0]
		a.mu.Unlock()
		if len(out) > 0 {
			a.out.Write(out) // a failing destination loses its lines: nothing to tell but the log itself
		}
		spare = out
		if stopped {
			return
		}
	}
}

// Write queues r as one JSON line.
func (a *Logger) Write(r *Record) {
	r.DurationMS = float64(r.Duration.Microseconds()) / 1000
	line, err := json.Marshal(r)
	if err != nil {
		return // a record of strings and numbers always encodes
	}
	a.WriteLine(line, newline)
}

var newline = []byte{'\n'}

// WriteLine queues one line, ready in parts that end with its newline, or
// drops and counts it when the queue is full.
func (a *Logger) WriteLine(parts ...[]byte) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	a.mu.Lock()
	if len(a.pending)+n > a.limit {
		a.mu.Unlock()
		a.dropped.Add(1)
		return
	}
	for _, p := range parts {
		a.pending = append(a.pending, p...)
	}
	batch := len(a.pending) >= a.batch
	a.mu.Unlock()
	if batch {
		select {
		case a.wake <- struct{}{}:
		default: // already woken
		}
	}
}

// Close writes what is queued, waiting at most accessLogCloseWait for a
// destination that does not take it, and closes a file.
func (a *Logger) Close() {
	close(a.stop)
	select {
	case <-a.done:
	case <-time.After(accessLogCloseWait):
	}
	if a.file != nil {
		a.file.Close()
	}
}
