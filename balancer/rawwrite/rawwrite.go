// Package rawwrite writes to TCP sockets by a raw system call.
//
// A write through net.Conn is a system call the runtime is told of
// (syscall.Syscall): when it lasts past a tick of the runtime's monitor, and
// a loopback write does (it delivers the bytes to the peer's socket inside
// the call), the monitor hands the goroutine's core to another thread. The
// goroutine then waits in the global run queue behind everything ready, and
// the process's threads take turns on one core. A Writer makes the same
// write with syscall.RawSyscall inside RawConn.Write: the socket is
// non-blocking, so the call never blocks; when the socket is full, it waits
// in Go's poller as net.Conn's write does, with the write deadline.
//
// The L4 relay uses it, with its reads made raw too: under `wrk -c64` through
// a TCP listener, berth's involuntary context switches fell by four fifths.
// On the HTTP/1.1 path raw writes, and raw reads with them, bought nothing
// measurable (docs/benchmarks.md): it writes through net.Conn.
package rawwrite

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Writer writes to one TCP socket; To makes it. Not safe for concurrent
// use (a connection's writes are serialised by its owner, as bufio.Writer's
// are).
type Writer struct {
	conn net.Conn
	raw  syscall.RawConn
	// The write in progress, here rather than in a closure so that a write
	// allocates nothing: step is writeSome, made once by To.
	step    func(fd uintptr) bool
	pending []byte
	written int
	err     error
}

// To returns a Writer for conn when conn is a TCP socket, else conn itself.
func To(conn net.Conn) io.Writer {
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return conn
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return conn
	}
	w := &Writer{conn: conn, raw: raw}
	w.step = w.writeSome
	return w
}

// Write writes all of p, or returns why not as net.Conn's Write does: a
// *net.OpError, around an *os.SyscallError for the socket's own errors.
func (w *Writer) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	w.pending, w.written, w.err = p, 0, nil
	err := w.raw.Write(w.step)
	written, werr := w.written, w.err
	w.pending, w.err = nil, nil
	if werr == nil && err != nil {
		werr = err
		// RawConn.Write's own *net.OpError (closed, deadline): its cause,
		// for this one.
		var op *net.OpError
		if errors.As(err, &op) {
			werr = op.Err
		}
	}
	if werr != nil {
		return written, &net.OpError{Op: "write", Net: "tcp", Source: w.conn.LocalAddr(), Addr: w.conn.RemoteAddr(), Err: werr}
	}
	return written, nil
}

// writeSome is the RawConn.Write callback: true stops, false waits for the
// socket to be writable.
func (w *Writer) writeSome(fd uintptr) bool {
	for w.written < len(w.pending) {
		rest := w.pending[w.written:]
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
		switch errno {
		case 0:
			w.written += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			w.err = os.NewSyscallError("write", errno)
			return true
		}
	}
	return true
}
