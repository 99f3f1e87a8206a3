package pool

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berth-lb/berth/internal/tcppair"
)

// FlushAwait on real loopback TCP: it returns once the answer can be read,
// and whatever else ends the wait (the target closed the idle connection,
// the read deadline, a Close from another goroutine, as Target.Abandon
// does) is what the read after it reports, well before a deadline that
// bounds every case.
func TestFlushAwait(t *testing.T) {
	const bound = 5 * time.Second // no case may need it: reaching it fails
	const request = "GET / HTTP/1.1\r\nHost: t\r\n\r\n"
	tests := []struct {
		name string
		// request is what goes into Bw before FlushAwait.
		request string
		// target runs on the target's end; got closes when it has read
		// the request.
		target func(t *testing.T, conn *net.TCPConn, got chan<- struct{})
		// closedIdle: the target closed the connection before the request,
		// and berth saw its FIN arrive while the connection was idle.
		closedIdle bool
		// deadline is the read deadline set before FlushAwait.
		deadline time.Duration
		// closeWhenSent closes the connection once the target has the request.
		closeWhenSent bool
		// waits: the answer is there when FlushAwait returns (a case that
		// reads an answer).
		waits   bool
		wantErr func(error) bool // of the read after FlushAwait; nil: the answer
	}{
		{
			name: "the answer arrives", request: request, deadline: bound, waits: true,
			target: answerAfter(request, 20*time.Millisecond),
		},
		{
			name: "a head larger than Bw went out in part: only a flush", request: bigRequest(), deadline: bound,
			target: answerAfter(bigRequest(), 20*time.Millisecond),
		},
		{
			name: "the target closed the idle connection", request: request, deadline: bound, closedIdle: true,
			target:  func(t *testing.T, conn *net.TCPConn, got chan<- struct{}) { conn.Close() },
			wantErr: func(err error) bool { return err != nil && !errors.Is(err, os.ErrDeadlineExceeded) },
		},
		{
			name: "the read deadline passes", request: request, deadline: 50 * time.Millisecond,
			target:  readOnly(request),
			wantErr: func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) },
		},
		{
			name: "closed from another goroutine", request: request, deadline: bound, closeWhenSent: true,
			target:  readOnly(request),
			wantErr: func(err error) bool { return errors.Is(err, net.ErrClosed) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := tcppair.Loopback(t)
			uc := newConn(&Target{}, client)
			got := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				tt.target(t, server, got)
			}()
			if tt.closedIdle {
				<-done
				for until := time.Now().Add(bound); StillOpen(client); {
					if time.Now().After(until) {
						t.Fatal("the target's FIN never arrived")
					}
					time.Sleep(time.Millisecond)
				}
			}
			if tt.closeWhenSent {
				go func() {
					<-got
					client.Close()
				}()
			}
			start := time.Now()
			client.SetReadDeadline(start.Add(tt.deadline))
			uc.Bw.WriteString(tt.request)
			if err := uc.FlushAwait(); err != nil && !tt.closedIdle {
				t.Fatalf("FlushAwait: %v", err) // a reset may beat the write only to a closed target
			}
			if waited := !StillOpen(client); tt.wantErr == nil && waited != tt.waits {
				t.Errorf("the answer was there when FlushAwait returned: %v, want %v", waited, tt.waits)
			}
			line, err := uc.Br.ReadString('\n')
			if tt.wantErr == nil {
				if err != nil || line != "HTTP/1.1 204 No Content\r\n" {
					t.Fatalf("read %q, %v, want the answer", line, err)
				}
			} else if !tt.wantErr(err) {
				t.Fatalf("read %q, %v", line, err)
			}
			if took := time.Since(start); took >= bound {
				t.Fatalf("took %v", took)
			}
			<-done
		})
	}
}

// answerAfter is a target that reads request and answers it after wait.
func answerAfter(request string, wait time.Duration) func(*testing.T, *net.TCPConn, chan<- struct{}) {
	return func(t *testing.T, conn *net.TCPConn, got chan<- struct{}) {
		if !readRequest(t, conn, request) {
			return
		}
		close(got)
		time.Sleep(wait) // a FlushAwait that did not wait returns meanwhile
		conn.Write([]byte("HTTP/1.1 204 No Content\r\n\r\n"))
	}
}

// readOnly is a target that reads request and never answers.
func readOnly(request string) func(*testing.T, *net.TCPConn, chan<- struct{}) {
	return func(t *testing.T, conn *net.TCPConn, got chan<- struct{}) {
		if readRequest(t, conn, request) {
			close(got)
		}
	}
}

func readRequest(t *testing.T, conn *net.TCPConn, request string) bool {
	buf := make([]byte, len(request))
	if n, err := io.ReadFull(conn, buf); err != nil {
		t.Errorf("the target read %d bytes of the request: %v", n, err)
		return false
	}
	if string(buf) != request {
		t.Errorf("the target read %q", buf)
		return false
	}
	return true
}

// bigRequest's head is larger than Bw: a part goes out before FlushAwait.
func bigRequest() string {
	return "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + strings.Repeat("b", ConnBufferSize) + "\r\n\r\n"
}
