package rawwrite

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-lb/berth/internal/tcppair"
)

// writerTo is a raw Writer on dst.
func writerTo(t *testing.T, dst *net.TCPConn) *Writer {
	t.Helper()
	w, ok := To(dst).(*Writer)
	if !ok {
		t.Fatal("no raw Writer on a TCP socket")
	}
	return w
}

// A write larger than the socket takes goes out in full and in order: the
// raw write's EAGAIN waits in the poller until the peer reads.
func TestWriteWaitsForAFullSocket(t *testing.T) {
	dst, peer := tcppair.Loopback(t)
	w := writerTo(t, dst)
	data := make([]byte, 16<<20) // far more than the buffers take unread
	for i := range data {
		data[i] = byte(i * 13)
	}
	received := make(chan []byte, 1)
	go func() {
		time.Sleep(20 * time.Millisecond) // not reading yet: the writes fill the buffers
		got, _ := io.ReadAll(io.LimitReader(peer, int64(len(data))))
		received <- got
	}()
	n, err := w.Write(data)
	if err != nil || n != len(data) {
		t.Fatalf("wrote %d, %v; want %d, nil", n, err, len(data))
	}
	if got := <-received; !bytes.Equal(got, data) {
		t.Fatalf("the peer got %d bytes, not the %d written in order", len(got), len(data))
	}
}

// A write to a socket its peer reset fails as net.Conn's write does: a
// *net.OpError around the errno, so callers classify it alike.
func TestWriteToAResetSocketFails(t *testing.T) {
	dst, peer := tcppair.Loopback(t)
	w := writerTo(t, dst)
	peer.SetLinger(0)
	peer.Close()
	raw, err := dst.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		var info *unix.TCPInfo
		raw.Control(func(fd uintptr) { info, _ = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
		if info != nil && info.State == unix.BPF_TCP_CLOSE {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the peer's reset never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	_, err = w.Write([]byte("hello"))
	var opErr *net.OpError
	var sysErr *os.SyscallError
	if !errors.As(err, &opErr) || !errors.As(err, &sysErr) || !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("got %v, want a *net.OpError of the reset", err)
	}
}

// A write to a closed socket reports net.ErrClosed, as net.Conn's does.
func TestWriteToAClosedSocketFails(t *testing.T) {
	dst, _ := tcppair.Loopback(t)
	w := writerTo(t, dst)
	dst.Close()
	_, err := w.Write([]byte("hello"))
	var opErr *net.OpError
	if !errors.Is(err, net.ErrClosed) || !errors.As(err, &opErr) || errors.As(opErr.Err, new(*net.OpError)) {
		t.Fatalf("got %v, want net.ErrClosed in one *net.OpError", err)
	}
}

// What is not a TCP socket is written to as it is.
func TestToKeepsOtherConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if w := To(a); w != a {
		t.Fatalf("To(net.Pipe()) = %T, want the conn itself", w)
	}
}
