package balancer

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// recordingBackend is an HTTP/1.1 target on loopback that records the exact
// bytes it receives and answers every request head with the same response,
// without parsing anything: what berth sends is what the test sees.
type recordingBackend struct {
	addr string
	mu   sync.Mutex
	got  []byte
}

const recordedResponse = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nrecorded"

func newRecordingBackend(t *testing.T) *recordingBackend {
	rb := &recordingBackend{}
	rb.addr = tcpServer(t, func(conn net.Conn) {
		buf := make([]byte, 64<<10)
		var seen []byte // this connection's bytes since its last answer
		for {
			n, err := conn.Read(buf)
			if n > 0 {
				rb.mu.Lock()
				rb.got = append(rb.got, buf[:n]...)
				rb.mu.Unlock()
				seen = append(seen, buf[:n]...)
				// One answer per head: the bodies of these tests hold no empty line.
				for i := bytes.Index(seen, []byte("\r\n\r\n")); i >= 0; i = bytes.Index(seen, []byte("\r\n\r\n")) {
					seen = seen[i+4:]
					if _, err := conn.Write([]byte(recordedResponse)); err != nil {
						return
					}
				}
			}
			if err != nil {
				return
			}
		}
	})
	return rb
}

// take returns what the backend received since the last take.
func (rb *recordingBackend) take() []byte {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	got := rb.got
	rb.got = nil
	return got
}
