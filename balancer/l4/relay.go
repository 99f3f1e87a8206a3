package l4

import (
	"io"
	"net"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/berth-lb/berth/balancer/rawwrite"
)

// ResetCheck bounds how long a reset that came in with the last data read
// from a socket may go unseen (see relay): about TCP's shortest
// retransmission timeout, the delay of one lost packet.
const ResetCheck = 200 * time.Millisecond

// relay copies small messages from a TCP socket to dst without the read
// that fails with EAGAIN after each of them. A read through net.Conn waits
// for the socket only after a read failed, because Go forgets the socket's
// readiness each time a read begins: per message a read that copies, a
// write and a read that fails, where HAProxy and nginx make two syscalls.
// Inside one RawConn.Read the readiness is kept between the callback's
// returns, so after a read that emptied the receive queue the callback can
// wait at once for the next edge of Go's edge-triggered epoll: data, a FIN
// or a reset that arrives after the read raises one.
//
// Whether the read emptied the queue comes from the kernel: with TCP_INQ,
// recvmsg says how many bytes are left, and 1 when a FIN is (Linux 4.18).
// A reset that arrived before the read, with the data, counts in neither
// and raises no new edge; only a read tells it. So the first wait after
// such a read re-arms the read deadline to ResetCheck, and when that passes, a new
// RawConn.Read begins with a read (EAGAIN: nothing was missed) and the idle
// deadline is armed again. A busy direction makes that check once per
// ResetCheck, and a quiet one once after its last message.
type relay struct {
	c          *l4Conn
	conn       *net.TCPConn
	raw        syscall.RawConn
	fromClient bool
	buf        []byte
	msg        unix.Msghdr
	iov        unix.Iovec
	oob        [24]byte // one cmsg of an int32: CmsgSpace(4)
	read       func(fd uintptr) bool
	// out is dst, or a raw writer on it (rawwrite: no hand-off of the core
	// mid-write, as recv makes none mid-read).
	out io.Writer
	// idleAt is the idle deadline; checking is set while the read
	// deadline is ResetCheck's instead.
	idleAt   time.Time
	checking bool
	// What the callback leaves for run: bytes written to dst, why it
	// stopped, whether a read filled buf (a stream: the caller splices).
	n    int64
	err  error
	full bool
}

// newRelay prepares a relay from src, or returns nil when the kernel cannot
// say how much is left to read (no TCP_INQ: the caller reads as before).
func newRelay(c *l4Conn, src *net.TCPConn, dst net.Conn, fromClient bool, buf []byte) *relay {
	raw, err := src.SyscallConn()
	if err != nil {
		return nil
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_TCP, unix.TCP_INQ, 1)
	}); err != nil || serr != nil {
		return nil
	}
	r := &relay{c: c, conn: src, raw: raw, out: rawwrite.To(dst), fromClient: fromClient, buf: buf}
	r.iov.Base = &buf[0]
	r.iov.SetLen(len(buf))
	r.msg.Iov = &r.iov
	r.msg.SetIovlen(1)
	r.msg.Control = &r.oob[0]
	r.read = r.readWrite
	return r
}

// arm sets the idle deadline.
func (r *relay) arm(at time.Time) {
	r.idleAt, r.checking = at, false
	r.conn.SetReadDeadline(at)
}

// checked tells whether the deadline that passed was ResetCheck's before
// the idle deadline, and if so arms the idle one again: the caller's next
// run begins with the read that finds a missed reset.
func (r *relay) checked() bool {
	if !r.checking || !time.Now().Before(r.idleAt) {
		return false
	}
	r.arm(r.idleAt)
	return true
}

// run copies until a read fills the buffer, the source ends (io.EOF) or
// fails, a write fails, or the read deadline passes. It returns the bytes
// written to dst, each write counted as it is made.
func (r *relay) run() (int64, bool, error) {
	r.n, r.err, r.full = 0, nil, false
	err := r.raw.Read(r.read)
	if r.err == nil {
		r.err = err
	}
	return r.n, r.full, r.err
}

// readWrite is the RawConn.Read callback: true stops, false waits for the
// socket to be readable.
func (r *relay) readWrite(fd uintptr) bool {
	for {
		n, inq, err := r.recv(int(fd))
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			r.err = err
			return true
		case n == 0:
			r.err = io.EOF
			return true
		}
		w, err := r.out.Write(r.buf[:n])
		r.n += int64(w)
		r.c.count(r.fromClient, int64(w))
		switch {
		case err != nil:
			r.err = err
			return true
		case n == len(r.buf):
			r.full = true
			return true
		case inq == 0:
			if !r.checking {
				r.checking = true
				at := time.Now().Add(ResetCheck)
				if r.idleAt.Before(at) {
					at = r.idleAt
				}
				r.conn.SetReadDeadline(at)
			}
			return false
		}
	}
}

// recv reads into buf with recvmsg and returns how many bytes the kernel
// has left to read after it (TCP_CM_INQ; 1 when it does not say). By
// RawSyscall, for the reason rawwrite writes by one; the socket is
// non-blocking.
func (r *relay) recv(fd int) (n int, inq int32, err error) {
	r.msg.SetControllen(len(r.oob))
	got, _, errno := syscall.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&r.msg)), 0)
	if errno != 0 {
		return 0, 0, errno
	}
	inq = 1
	if h := (*unix.Cmsghdr)(unsafe.Pointer(&r.oob[0])); r.msg.Controllen >= uint64(unix.CmsgLen(4)) &&
		h.Level == unix.SOL_TCP && h.Type == unix.TCP_CM_INQ {
		inq = *(*int32)(unsafe.Pointer(&r.oob[unix.CmsgLen(0)]))
	}
	return int(got), inq, nil
}
