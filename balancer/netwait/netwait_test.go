package netwait

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-lb/berth/internal/tcppair"
)

// readable reports whether conn has bytes to read now, without waiting.
func readable(t *testing.T, conn *net.TCPConn) bool {
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, _ = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return true
	})
	return n > 0
}

// An answer that comes at once, before the wait could begin after the
// write, is not missed; and FlushAndAwait returns only once it is there.
func TestFlushAndAwaitSeesEveryAnswer(t *testing.T) {
	client, server := tcppair.Loopback(t)
	go io.Copy(server, server) // an echo: each request is answered at once
	var f FlushWaiter
	f.Init(client)
	if !f.CanAwait() {
		t.Fatal("a TCP connection cannot be waited on")
	}
	w, r := bufio.NewWriter(client), bufio.NewReader(client)
	buf := make([]byte, 5)
	for i := range 2000 {
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		w.WriteString("ping\n")
		if err := f.FlushAndAwait(w); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if !readable(t, client) {
			t.Fatalf("round %d: FlushAndAwait returned before the answer came", i)
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatalf("round %d: the answer was missed: %v", i, err)
		}
	}
}

// A wait ends at the read deadline: the write went out, and the read that
// follows reports the timeout.
func TestFlushAndAwaitEndsAtTheDeadline(t *testing.T) {
	client, server := tcppair.Loopback(t)
	var f FlushWaiter
	f.Init(client)
	w := bufio.NewWriter(client)
	client.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	w.WriteString("hello")
	if err := f.FlushAndAwait(w); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(server, got); err != nil || string(got) != "hello" {
		t.Fatalf("the target got %q, %v", got, err)
	}
	if _, err := client.Read(got); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after the wait: %v, want the deadline", err)
	}
	// With the deadline past already the wait cannot begin: the write
	// still goes out.
	w.WriteString("again")
	if err := f.FlushAndAwait(w); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, got); err != nil || string(got) != "again" {
		t.Fatalf("the target got %q, %v", got, err)
	}
}

// The peer's close ends the wait, and a write that fails is reported.
func TestFlushAndAwaitEndsWithThePeer(t *testing.T) {
	client, server := tcppair.Loopback(t)
	var f FlushWaiter
	f.Init(client)
	w := bufio.NewWriter(client)
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	go func() {
		server.Read(make([]byte, 1))
		server.Close()
	}()
	w.WriteString("x")
	start := time.Now()
	if err := f.FlushAndAwait(w); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 4*time.Second {
		t.Fatal("the wait outlasted the peer's close")
	}
	client.Close()
	w.WriteString("y")
	if err := f.FlushAndAwait(w); err == nil {
		t.Fatal("a write to a closed connection succeeded")
	}
}

// A connection without a descriptor (TLS, a pipe) is only flushed.
func TestFlushWaiterWithoutDescriptorFlushes(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var f FlushWaiter
	f.Init(a)
	if f.CanAwait() {
		t.Fatal("a pipe can be waited on")
	}
	w := bufio.NewWriter(a)
	w.WriteString("z")
	go b.Read(make([]byte, 1))
	if err := f.FlushAndAwait(w); err != nil {
		t.Fatal(err)
	}
}
