package balancer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// accessLogFlush is how often buffered access-log lines are written out: the
// connection path only appends to a buffer.
const accessLogFlush = time.Second

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

// accessLogger buffers access-log lines and flushes them every second.
type accessLogger struct {
	mu   sync.Mutex
	w    *bufio.Writer
	out  io.Writer
	file *os.File // nil for stdout
	stop chan struct{}
	done chan struct{}
}

// openAccessLog opens dest: AccessLogStdout, AccessLogOff or "" (nil), or a
// file path, appended to.
func openAccessLog(dest string) (*accessLogger, error) {
	a := &accessLogger{stop: make(chan struct{}), done: make(chan struct{})}
	switch dest {
	case "", AccessLogOff:
		return nil, nil
	case AccessLogStdout:
		a.out = os.Stdout
	default:
		f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("balancer: access log: %w", err)
		}
		a.out, a.file = f, f
	}
	a.w = bufio.NewWriterSize(a.out, 64<<10)
	go a.flushLoop()
	return a, nil
}

func (a *accessLogger) flushLoop() {
	defer close(a.done)
	tick := time.NewTicker(accessLogFlush)
	defer tick.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-tick.C:
			a.mu.Lock()
			a.w.Flush()
			a.mu.Unlock()
		}
	}
}

func (a *accessLogger) write(r *accessRecord) {
	r.DurationMS = float64(r.Duration.Microseconds()) / 1000
	line, err := json.Marshal(r)
	if err != nil {
		return // a record of strings and numbers always encodes
	}
	a.mu.Lock()
	a.w.Write(line)
	a.w.WriteByte('\n')
	a.mu.Unlock()
}

// close flushes what is buffered and closes a file.
func (a *accessLogger) close() {
	close(a.stop)
	<-a.done
	a.mu.Lock()
	a.w.Flush()
	a.mu.Unlock()
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
