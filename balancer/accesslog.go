package balancer

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

// accessRecord is one access-log line: one L4 connection or UDP flow.
type accessRecord struct {
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

// accessLogger queues access-log lines for its writer goroutine. The
// connection path copies a line into the queue under a mutex, nothing more:
// no allocation, no system call.
type accessLogger struct {
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

// openAccessLog opens dest: AccessLogStdout, AccessLogOff or "" (nil), or a
// file path, appended to. Lines that find the queue full count in dropped.
func openAccessLog(dest string, dropped *atomic.Uint64) (*accessLogger, error) {
	switch dest {
	case "", AccessLogOff:
		return nil, nil
	case AccessLogStdout:
		return newAccessLogger(os.Stdout, nil, accessLogQueue, dropped), nil
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("balancer: access log: %w", err)
	}
	return newAccessLogger(f, f, accessLogQueue, dropped), nil
}

// newAccessLogger starts the writer of a log to out, with a queue of limit bytes.
func newAccessLogger(out io.Writer, file *os.File, limit int, dropped *atomic.Uint64) *accessLogger {
	// Both buffers are allocated whole, so queueing never allocates; the
	// pages of the part never used are never touched, so cost no memory.
	a := &accessLogger{out: out, file: file, limit: limit, batch: min(accessLogBatch, limit/2), dropped: dropped, pending: make([]byte, 0, limit),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go a.writeLoop()
	return a
}

// writeLoop writes the queue out: at every tick, when it reaches a batch,
// and once more when the log closes. It swaps the queue with a spare buffer
// and writes without the mutex, so lines keep queueing while it waits on
// the destination.
func (a *accessLogger) writeLoop() {
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

func (a *accessLogger) write(r *accessRecord) {
	r.DurationMS = float64(r.Duration.Microseconds()) / 1000
	line, err := json.Marshal(r)
	if err != nil {
		return // a record of strings and numbers always encodes
	}
	a.writeLine(line, newline)
}

var newline = []byte{'\n'}

// writeLine queues one line, ready in parts that end with its newline, or
// drops and counts it when the queue is full.
func (a *accessLogger) writeLine(parts ...[]byte) {
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

// close writes what is queued, waiting at most accessLogCloseWait for a
// destination that does not take it, and closes a file.
func (a *accessLogger) close() {
	close(a.stop)
	select {
	case <-a.done:
	case <-time.After(accessLogCloseWait):
	}
	if a.file != nil {
		a.file.Close()
	}
}

// accessLog writes r to the current access log, if any.
func (b *Balancer) accessLog(r *accessRecord) {
	if a := b.access.Load(); a != nil {
		a.write(r)
	}
}

// AccessLogDropped returns how many access-log lines were dropped because
// the log's queue was full: its destination took them slower than they came.
func (b *Balancer) AccessLogDropped() uint64 { return b.accessDropped.Load() }
