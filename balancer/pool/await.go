package pool

import (
	"net"
	"syscall"
)

// FlushAwait is Bw.Flush for the last bytes of a request, which also waits
// until the target's answer can be read, so that the read that follows
// finds its first bytes with one read(2). A plain read right after the
// request nearly always finds nothing yet: Go's poller tries read(2), gets
// EAGAIN, parks, and reads again once woken.
//
// It returns the flush's error only. A wait that fails (the read deadline
// passed, the connection was closed, as Target.Abandon does) is met again
// by the read that follows, which reports it as it would have without the
// wait. The caller must therefore set the response's read deadline before
// calling FlushAwait: that deadline bounds the wait.
//
// The wait is the poller's: FlushAwait flushes from inside the connection's
// RawConn.Read, after the poller has forgotten the readiness noted so far,
// and parks until the socket turns readable again. What it forgets arrived
// before the request was written, while the connection was idle, so it is
// no answer: a FIN of the target closing it (the request then draws a reset,
// which wakes the wait) or stray bytes (the wait ends with the answer
// following them, or at the deadline). Hence it waits only where the whole
// request goes out in this flush: when Bw wrote part of it before (a head
// larger than Bw, a body streamed), an early answer to that part may be
// among what the poller forgets, so it only flushes, as it does for a TLS
// connection (its reads are not the socket's) and when Br holds bytes
// already.
func (c *Conn) FlushAwait() error {
	if c.raw == nil || c.out.wrote || c.Br.Buffered() > 0 {
		return c.Bw.Flush()
	}
	c.flushed, c.flushErr = false, nil
	// Its error is the read's to report (above); a wait that ended before
	// the flush (closed, deadline passed) leaves the flush to do.
	c.raw.Read(c.awaitAnswer)
	if !c.flushed {
		return c.Bw.Flush()
	}
	return c.flushErr
}

// awaitStep is RawConn.Read's callback for FlushAwait (as c.awaitAnswer, a
// method value made once at Dial, so a request allocates nothing): its first
// call flushes and asks to wait, its next one is the wait's end.
func (c *Conn) awaitStep(uintptr) bool {
	if c.flushed {
		return true
	}
	c.flushed = true
	c.flushErr = c.Bw.Flush()
	return c.flushErr != nil
}

// connWriter is the writer under a Conn's Bw: it notes whether Bw wrote
// since the connection was last idle, for FlushAwait.
type connWriter struct {
	conn  net.Conn
	wrote bool
}

func (w *connWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.conn.Write(p)
}

// rawConnOf is a plain TCP connection's RawConn, else nil: what FlushAwait
// waits on and StillOpen peeks with. (SyscallConn fails only for a TCPConn
// with no socket.)
func rawConnOf(conn net.Conn) syscall.RawConn {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}
