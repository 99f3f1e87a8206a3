// Package h2raw is a raw HTTP/2 client for berth's tests: it sends whatever
// header fields it is given, in order, also those that x/net's client
// refuses to send, and reports how each stream ended. Test code only.
package h2raw

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/berth-lb/berth/balancer/h2conn"
)

// Conn is an HTTP/2 client (prior knowledge) that sends whatever
// fields it is given, also those a real client would refuse to: the attacks
// on the HTTP/2 -> HTTP/1.1 downgrade.
type Conn struct {
	conn   net.Conn
	fr     *http2.Framer
	enc    *hpack.Encoder
	block  bytes.Buffer
	stream uint32
	// Split sends each header block as a padded HEADERS frame with a
	// priority and the first half, and a CONTINUATION with the rest.
	Split bool
}

// Answer is how a stream ended: with a response status, or reset.
type Answer struct {
	Status int
	Reset  http2.ErrCode // set when the stream (or the connection) was reset
	GoAway bool          // the connection was closed: it takes no more streams
	Body   string
}

func (a Answer) String() string {
	if a.Status == 0 {
		return "reset " + a.Reset.String()
	}
	return strconv.Itoa(a.Status) + " " + strconv.Quote(a.Body)
}

// Dial opens a prior-knowledge HTTP/2 connection to addr and sends the
// preface and SETTINGS.
func Dial(addr string) (*Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &Conn{conn: conn, fr: http2.NewFramer(conn, conn), stream: 1}
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

// Send opens the next stream with fields and body, as Do does, and returns
// its ID without reading: the caller reads the frames from Framer.
func (c *Conn) Send(fields [][2]string, body []byte) (uint32, error) {
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	c.block.Reset()
	for _, f := range fields {
		c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	id := c.stream
	c.stream += 2
	block := c.block.Bytes()
	var err error
	if c.Split {
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
	return id, err
}

// Framer reads and writes the connection's frames.
func (c *Conn) Framer() *http2.Framer { return c.fr }

// Do sends one request of fields (in this order, pseudo-headers included)
// with body (none when nil: the HEADERS frame ends the stream) and reads
// until its stream ends.
func (c *Conn) Do(fields [][2]string, body []byte) (Answer, error) {
	id, err := c.Send(fields, body)
	if err != nil {
		return Answer{}, err
	}
	var a Answer
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
			return Answer{Reset: f.ErrCode, GoAway: true}, nil
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return Answer{Reset: f.ErrCode}, nil
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				continue
			}
			if s := f.PseudoValue("status"); s != "" && a.Status == 0 {
				a.Status, _ = strconv.Atoi(s)
			}
			if f.StreamEnded() {
				return a, nil
			}
		case *http2.DataFrame:
			if f.StreamID != id {
				continue
			}
			a.Body += string(f.Data())
			if len(f.Data()) > 0 {
				c.fr.WriteWindowUpdate(0, uint32(len(f.Data())))
			}
			if f.StreamEnded() {
				return a, nil
			}
		}
	}
}

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }

// Fields are the fields of a request in the order a client sends
// them; an empty authority is left out.
func Fields(method, path, authority string, more ...string) [][2]string {
	f := [][2]string{{":method", method}, {":scheme", "http"}, {":path", path}}
	if authority != "" {
		f = append(f, [2]string{":authority", authority})
	}
	for i := 0; i+1 < len(more); i += 2 {
		f = append(f, [2]string{more[i], more[i+1]})
	}
	return f
}

// DoOnce sends one request on a new connection: an attack may end its
// connection, and must not decide the next one's fate.
func DoOnce(addr string, fields [][2]string, body []byte) (Answer, error) {
	c, err := Dial(addr)
	if err != nil {
		return Answer{}, err
	}
	defer c.Close()
	a, err := c.Do(fields, body)
	if err != nil {
		return a, fmt.Errorf("no answer to %q: %w", fields, err)
	}
	return a, nil
}
