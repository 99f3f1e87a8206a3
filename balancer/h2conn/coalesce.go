package h2conn

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"time"
)

// coalescingConn gathers what is written to a client connection while an
// earlier write is still going out, and sends it in one write: the HTTP/2
// server flushes after every frame it schedules when nothing else is queued
// at that instant, which under many concurrent streams is a syscall (and a
// TLS record) per response. Writes return once buffered; the first error of
// the connection is returned by the next write. While one batch goes out the
// next gathers, up to maxCoalesced: then writers wait, so a slow client holds
// back the server as it would without this.
//
// Each batch must go out within writeTimeout: a client that takes no bytes
// for that long fails the write, and with it the connection. The timeout is
// kept here rather than in x/net's WriteByteTimeout, which costs a deadline
// (a timer under the runtime's lock) on every flush, in the goroutine x/net
// starts for that flush, whose small stack it outgrows.
type coalescingConn struct {
	net.Conn
	// reads is what the server reads: the connection, or a filter of its
	// bytes (Inbound).
	reads   io.Reader
	mu      sync.Mutex
	drained *sync.Cond
	pending []byte
	spare   []byte
	writing bool
	err     error
	// recovered reports a panic of the goroutine that writes out; nil: none.
	recovered    func(v any)
	writeTimeout time.Duration
	// closeBy, once Close waits, is when the last batch must be out.
	closeBy time.Time
}

// maxCoalesced bounds what waits for a slow client: writers block above it.
const maxCoalesced = 256 << 10

// closeFlushTimeout bounds how long Close waits for pending bytes (a GOAWAY
// written just before) to go out to a client that does not read.
const closeFlushTimeout = time.Second

// NewCoalescingConn wraps c, reading from reads, or c when reads is nil;
// writeTimeout bounds each batch's write (0: no bound); recovered reports a
// panic of its write-out goroutine.
func NewCoalescingConn(c net.Conn, reads io.Reader, writeTimeout time.Duration, recovered func(v any)) net.Conn {
	if reads == nil {
		reads = c
	}
	cc := &coalescingConn{Conn: c, reads: reads, recovered: recovered, writeTimeout: writeTimeout}
	cc.drained = sync.NewCond(&cc.mu)
	if tc, ok := c.(*tls.Conn); ok {
		return &coalescingTLSConn{coalescingConn: cc, tls: tc}
	}
	return cc
}

func (c *coalescingConn) Read(p []byte) (int, error) { return c.reads.Read(p) }

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.err == nil && len(c.pending) >= maxCoalesced {
		c.drained.Wait()
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	c.pending = append(c.pending, p...)
	if !c.writing {
		c.writing = true
		go c.writeOut()
	}
	c.mu.Unlock()
	return len(p), nil
}

// writeOut sends what is pending until nothing is.
func (c *coalescingConn) writeOut() {
	defer c.recoverWriteOut()
	c.mu.Lock()
	for len(c.pending) > 0 && c.err == nil {
		out := c.pending
		c.pending, c.spare = c.spare[:0], nil
		c.drained.Broadcast() // writers may fill pending again while out goes
		closeBy := c.closeBy
		c.mu.Unlock()
		if c.writeTimeout > 0 {
			deadline := time.Now().Add(c.writeTimeout)
			if !closeBy.IsZero() && closeBy.Before(deadline) {
				deadline = closeBy // Close's bound holds for every batch after it
			}
			c.Conn.SetWriteDeadline(deadline)
		}
		_, err := c.Conn.Write(out)
		c.mu.Lock()
		c.spare = out[:0]
		if err != nil {
			c.err = err
		}
		c.drained.Broadcast()
	}
	c.writing = false
	c.drained.Broadcast()
	c.mu.Unlock()
}

// recoverWriteOut is the backstop of writeOut's goroutine: a panic ends the
// connection, and its writers and Close are released rather than left
// waiting for a writer that is gone.
func (c *coalescingConn) recoverWriteOut() {
	v := recover()
	if v == nil {
		return
	}
	c.Conn.Close()
	c.mu.Lock() // a panic in Write happens with mu unlocked
	c.err, c.writing = net.ErrClosed, false
	c.drained.Broadcast()
	c.mu.Unlock()
	if c.recovered != nil {
		c.recovered(v)
	}
}

// Close sends what is pending, then closes the connection.
func (c *coalescingConn) Close() error {
	c.mu.Lock()
	if c.writing && c.err == nil {
		c.closeBy = time.Now().Add(closeFlushTimeout)
		c.Conn.SetWriteDeadline(c.closeBy)
		for c.writing {
			c.drained.Wait()
		}
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// coalescingTLSConn keeps the TLS session visible to the HTTP/2 server,
// which checks it (RFC 9113 9.2) and hands it to requests as r.TLS.
type coalescingTLSConn struct {
	*coalescingConn
	tls *tls.Conn
}

func (c *coalescingTLSConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }
