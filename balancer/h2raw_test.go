package balancer

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/berth-lb/berth/balancer/h2conn"
)

// rawH2Conn is an HTTP/2 client (prior knowledge) that sends whatever
// fields it is given, also those a real client would refuse to: the attacks
// on the HTTP/2 -> HTTP/1.1 downgrade.
type rawH2Conn struct {
	conn   net.Conn
	fr     *http2.Framer
	enc    *hpack.Encoder
	block  bytes.Buffer
	stream uint32
	// split sends each header block as a padded HEADERS frame with a
	// priority and the first half, and a CONTINUATION with the rest.
	split bool
}

// h2Answer is how a stream ended: with a response status, or reset.
type h2Answer struct {
	status int
	reset  http2.ErrCode // set when the stream (or the connection) was reset
	goaway bool          // the connection was closed: it takes no more streams
	body   string
}

func (a h2Answer) String() string {
	if a.status == 0 {
		return "reset " + a.reset.String()
	}
	return strconv.Itoa(a.status) + " " + strconv.Quote(a.body)
}

func dialRawH2(addr string) (*rawH2Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &rawH2Conn{conn: conn, fr: http2.NewFramer(conn, conn), stream: 1}
	c.enc = hpack.NewEncoder(&c.block)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(h2conn.Preface)); err != nil {
		conn.Close()
		return nil, err
	}
	if err := c.fr.WriteSettings(); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// do sends one request of fields (in this order, pseudo-headers included)
// with body (none when nil: the HEADERS frame ends the stream) and reads
// until its stream ends.
func (c *rawH2Conn) do(fields [][2]string, body []byte) (h2Answer, error) {
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	c.block.Reset()
	for _, f := range fields {
		c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	id := c.stream
	c.stream += 2
	block := c.block.Bytes()
	var err error
	if c.split {
		half := len(block) / 2
		err = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block[:half], EndStream: body == nil,
			PadLength: 7, Priority: http2.PriorityParam{Weight: 200}})
		if err == nil {
			err = c.fr.WriteContinuation(id, true, block[half:])
		}
	} else {
		err = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: body == nil, EndHeaders: true})
	}
	if err == nil && body != nil {
		err = c.fr.WriteData(id, true, body)
	}
	if err != nil {
		return h2Answer{}, err
	}
	var a h2Answer
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return a, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.fr.WriteSettingsAck()
			}
		case *http2.GoAwayFrame:
			return h2Answer{reset: f.ErrCode, goaway: true}, nil
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return h2Answer{reset: f.ErrCode}, nil
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				continue
			}
			if s := f.PseudoValue("status"); s != "" && a.status == 0 {
				a.status, _ = strconv.Atoi(s)
			}
			if f.StreamEnded() {
				return a, nil
			}
		case *http2.DataFrame:
			if f.StreamID != id {
				continue
			}
			a.body += string(f.Data())
			if len(f.Data()) > 0 {
				c.fr.WriteWindowUpdate(0, uint32(len(f.Data())))
			}
			if f.StreamEnded() {
				return a, nil
			}
		}
	}
}

func (c *rawH2Conn) Close() error { return c.conn.Close() }

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

// requestFields are the fields of a request in the order a client sends
// them; an empty authority is left out.
func requestFields(method, path, authority string, more ...string) [][2]string {
	f := [][2]string{{":method", method}, {":scheme", "http"}, {":path", path}}
	if authority != "" {
		f = append(f, [2]string{":authority", authority})
	}
	for i := 0; i+1 < len(more); i += 2 {
		f = append(f, [2]string{more[i], more[i+1]})
	}
	return f
}

// rawH2Do sends one request on a new connection: an attack may end its
// connection, and must not decide the next one's fate.
func rawH2Do(addr string, fields [][2]string, body []byte) (h2Answer, error) {
	c, err := dialRawH2(addr)
	if err != nil {
		return h2Answer{}, err
	}
	defer c.Close()
	a, err := c.do(fields, body)
	if err != nil {
		return a, fmt.Errorf("no answer to %q: %w", fields, err)
	}
	return a, nil
}
