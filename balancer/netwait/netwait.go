// Package netwait writes what a connection's buffer holds and then waits,
// through the runtime's poller, until the connection has something to read,
// without the read that would find nothing.
//
// A proxy writes a request and reads the answer, writes the answer and
// reads the next request: each read right after the write finds nothing
// (EAGAIN), costs a syscall, and only then waits. HAProxy reads when epoll
// says so. Go's poller is edge-triggered and forgets readiness it saw
// before a wait began, so a wait must begin before the write whose answer
// it waits for: FlushAndAwait writes from inside the wait (syscall.RawConn's
// Read calls its function before it first waits).
package netwait

import (
	"bufio"
	"syscall"
)

// FlushWaiter flushes and waits on one connection; its zero value (or one
// given a connection without a descriptor, such as TLS) just flushes.
type FlushWaiter struct {
	raw syscall.RawConn
	// step is flushStep, made once: a method value per call would be an
	// allocation.
	step    func(fd uintptr) bool
	w       *bufio.Writer
	flushed bool
	err     error
}

// Init binds f to conn's descriptor when conn has one (a *net.TCPConn, or a
// wrapper that is a syscall.Conn). Bytes a wrapper holds above the socket
// are the caller's to check: FlushAndAwait would wait for the socket.
func (f *FlushWaiter) Init(conn any) {
	f.raw, f.step = nil, nil
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	f.raw, f.step = raw, f.flushStep
}

// CanAwait reports whether FlushAndAwait waits (it has a descriptor).
func (f *FlushWaiter) CanAwait() bool { return f.raw != nil }

// FlushAndAwait writes w, then waits until the connection is readable (bytes,
// its end, an error) or its read deadline passes, and returns the write's
// error. How the wait ended is left to the read that follows, which reports
// a deadline or a close itself. Only while nothing else reads the connection
// and nothing is buffered above its socket.
func (f *FlushWaiter) FlushAndAwait(w *bufio.Writer) error {
	if f.raw == nil {
		return w.Flush()
	}
	f.w, f.flushed, f.err = w, false, nil
	if err := f.raw.Read(f.step); err != nil && !f.flushed {
		// The wait could not begin (the connection is closed or its read
		// deadline passed): the write has not been tried.
		f.err = w.Flush()
	}
	f.w = nil
	return f.err
}

// flushStep is called once before the wait (it writes and asks to wait,
// unless the write failed) and once after it (the wait is over).
func (f *FlushWaiter) flushStep(uintptr) bool {
	if f.flushed {
		return true
	}
	f.flushed = true
	f.err = f.w.Flush()
	return f.err != nil
}
