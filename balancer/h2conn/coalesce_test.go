package h2conn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-lb/berth/internal/tcppair"
)

func TestCoalescingConnKeepsOrderAndSendsAllBeforeClose(t *testing.T) {
	client, server := tcppair.Loopback(t)
	c := NewCoalescingConn(server, nil, 0, nil)
	var want bytes.Buffer
	for i := range 20000 {
		line := []byte("frame " + strconv.Itoa(i) + "\n")
		want.Write(line)
		if _, err := c.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(client)
		got <- b
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("the client read %d bytes, want the %d written, in order", len(b), want.Len())
	}
}

func TestCoalescingConnHoldsBackWritersOfASlowClient(t *testing.T) {
	client, server := net.Pipe() // a write blocks until the client reads it
	defer client.Close()
	c := NewCoalescingConn(server, nil, 0, nil).(*coalescingConn)
	const chunk, total = 16 << 10, 2 << 20
	var written atomic.Int64
	done := make(chan error, 1)
	go func() {
		buf := bytes.Repeat([]byte{'x'}, chunk)
		for written.Load() < total {
			if _, err := c.Write(buf); err != nil {
				done <- err
				return
			}
			written.Add(chunk)
		}
		done <- nil
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		full := len(c.pending) >= maxCoalesced
		c.mu.Unlock()
		if full {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the buffer never filled: %d bytes written", written.Load())
		}
		time.Sleep(time.Millisecond)
	}
	// Pending (up to maxCoalesced plus one write) and one batch in flight:
	// nothing more is taken from the writer while the client does not read.
	if n := written.Load(); n > 2*maxCoalesced+chunk {
		t.Fatalf("the writer got %d bytes through to a client that reads nothing, want at most %d", n, 2*maxCoalesced+chunk)
	}
	select {
	case err := <-done:
		t.Fatalf("the writer finished (%v) while the client read nothing", err)
	default:
	}
	n, err := io.CopyN(io.Discard, client, total)
	if err != nil || n != total {
		t.Fatalf("read %d bytes (%v), want %d", n, err, total)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestCoalescingConnReportsAWriteErrorOnTheNextWrite(t *testing.T) {
	client, server := net.Pipe()
	c := NewCoalescingConn(server, nil, 0, nil)
	client.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := c.Write([]byte("x")); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a closed peer kept succeeding")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCoalescingConnLetsGoOfAClientThatTakesNothing(t *testing.T) {
	client, server := net.Pipe() // a write blocks until the client reads it
	defer client.Close()
	c := NewCoalescingConn(server, nil, 50*time.Millisecond, nil)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := c.Write([]byte("x")); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the write failed with %v, want the write timeout", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a client that reads nothing kept succeeding past the write timeout")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCoalescingConnCloseBoundsEveryBatch closes while a batch is pending
// behind one in flight, to a client that reads the first and then nothing:
// Close returns after closeFlushTimeout, the write timeout of the next batch
// (an hour here) does not replace it.
func TestCoalescingConnCloseBoundsEveryBatch(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	c := NewCoalescingConn(server, nil, time.Hour, nil)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(bytes.Repeat([]byte("y"), 64<<10)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	// Close waits for the batch in flight, which goes once read.
	eventually := time.Now().Add(5 * time.Second)
	for {
		cc := c.(*coalescingConn)
		cc.mu.Lock()
		waiting := !cc.closeBy.IsZero()
		cc.mu.Unlock()
		if waiting {
			break
		}
		if time.Now().After(eventually) {
			t.Fatal("Close never waited for the batches")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := io.ReadFull(client, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(closeFlushTimeout + 2*time.Second):
		t.Fatalf("Close still waits %v after it began, for a client that reads nothing more", closeFlushTimeout+2*time.Second)
	}
}
