package h2front

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/berth-lb/berth/balancer/h2conn"
	"github.com/berth-lb/berth/balancer/h2server"
	"github.com/berth-lb/berth/balancer/http1"
	"github.com/berth-lb/berth/balancer/httpfront"
	"github.com/berth-lb/berth/internal/h2raw"
)

// parseForwardedHead reads head as one HTTP/1.1 request head, as a target
// would: the one place the tests parse what berth writes toward a target.
// berth's own strict codec must accept it too, and net/http's reading of it
// is what the fields are compared with.
func parseForwardedHead(head []byte) (*http.Request, error) {
	var strict http1.Head
	if err := strict.ReadRequest(bufio.NewReader(bytes.NewReader(head))); err != nil {
		return nil, fmt.Errorf("berth's codec refuses it: %w", err)
	}
	br := bufio.NewReader(bytes.NewReader(head))
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	if n := br.Buffered(); n > 0 {
		return nil, fmt.Errorf("%d bytes after the head", n)
	}
	return req, nil
}

// downgrade is what berth's handler did with one request of the fuzzer.
type downgrade struct {
	refused bool
	head    []byte
}

// FuzzH2Downgrade sends requests made of arbitrary :method, :path,
// :authority, Host and two more fields through berth's HTTP/2 server
// (balancer/h2server) to the handler's checks and HTTP/1.1 head writer
// (h2conn.Downgradable, writeHTTP1Head). Each request is refused (by the
// server's reset or 431, or by
// h2conn.Downgradable), or the head written parses back as one HTTP/1.1
// request with the same method, target, host and fields, and holds no CR,
// LF or NUL but its line ends.
func FuzzH2Downgrade(f *testing.F) {
	results := make(chan downgrade, 1)
	l := fuzzListener{}
	hc := &H2Conn{clientIP: []byte("192.0.2.1")}
	rt := &httpfront.Route{Scheme: "http", XFF: httpfront.XFFAppend}
	handler := h2server.HandlerFunc(func(s *h2server.Stream) {
		var d downgrade
		r := &s.Request
		if d.refused = !h2conn.Downgradable(r.Method, r.Path, r.Authority); !d.refused {
			var b bytes.Buffer
			bw := bufio.NewWriter(&b)
			q := &h2Request{l: l, hc: hc, rt: rt, s: s, r: r, requestID: "fuzz"}
			q.writeHTTP1Head(bw, r.ContentLength != 0)
			bw.Flush()
			d.head = b.Bytes()
		}
		results <- d
		s.WriteHeader(http.StatusNoContent)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	go func() {
		srv := &h2server.Server{Handler: handler, MaxHeaderListSize: http1.MaxHeadBytes}
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(context.Background(), conn, nil)
		}
	}()
	var c *h2raw.Conn // one connection for many inputs, until one ends it
	f.Cleanup(func() {
		if c != nil {
			c.Close()
		}
	})
	f.Fuzz(func(t *testing.T, method, path, authority, host, name1, value1, name2, value2 string) {
		var more []string // an empty name leaves its field out, as an empty host does
		for _, kv := range [][2]string{{"host", host}, {name1, value1}, {name2, value2}} {
			if kv[0] != "" && (kv[0] != "host" || kv[1] != "") {
				more = append(more, kv[0], kv[1])
			}
		}
		if c == nil {
			if c, err = h2raw.Dial(ln.Addr().String()); err != nil {
				t.Fatal(err)
			}
		}
		answer, err := c.Do(h2raw.Fields(method, path, authority, more...), nil)
		if err != nil || answer.GoAway {
			c.Close()
			c = nil
		}
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		var d downgrade
		select {
		case d = <-results:
		default: // the server refused the request: berth's handler never ran
			if answer.Status != 0 && answer.Status < 400 {
				t.Fatalf("answered %v without berth's handler", answer)
			}
			return
		}
		if d.refused {
			return
		}
		checkDowngradedHead(t, d.head, method, path, authority, host, more)
	})
}

// checkDowngradedHead checks that head, written for a request of these
// fields, is one well-framed HTTP/1.1 request head that says what the
// HTTP/2 request said.
func checkDowngradedHead(t *testing.T, head []byte, method, path, authority, host string, fields []string) {
	t.Helper()
	lines, ok := bytes.CutSuffix(head, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("head %q does not end with an empty line", head)
	}
	for _, line := range bytes.Split(lines, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n\x00") {
			t.Fatalf("head %q: line %q holds CR, LF or NUL", head, line)
		}
	}
	req, err := parseForwardedHead(head)
	if err != nil {
		t.Fatalf("head %q does not parse back: %v", head, err)
	}
	if authority == "" {
		authority = host
	}
	if req.Method != method || req.RequestURI != path || req.Host != authority {
		t.Fatalf("head %q parses back as %q %q host %q, want %q %q host %q",
			head, req.Method, req.RequestURI, req.Host, method, path, authority)
	}
	for i := 0; i+1 < len(fields); i += 2 {
		name := http.CanonicalHeaderKey(fields[i])
		if droppedRequestField(strings.ToLower(name)) || name == "Cookie" { // rewritten, or joined by the server
			continue
		}
		// A recipient trims the whitespace around a value (RFC 9110 5.5).
		if want := strings.Trim(fields[i+1], " \t"); !slices.Contains(req.Header.Values(name), want) {
			t.Fatalf("head %q: %s is %q, want %q among them", head, name, req.Header.Values(name), want)
		}
	}
}

// fuzzListener is the listener of FuzzH2Downgrade: the head writer reads its
// forwarded port; any other method panics, failing the input.
type fuzzListener struct{ Listener }

func (fuzzListener) ForwardedPort() []byte { return []byte("8080") }
