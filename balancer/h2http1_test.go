package balancer

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// scriptedBackend answers every request on its connection with the raw
// response reply gives for the request's path, then closes the connection
// when close is true.
func scriptedBackend(t *testing.T, reply func(path string) (raw string, close bool)) string {
	return tcpServer(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			raw, closeAfter := reply(req.URL.Path)
			if _, err := io.WriteString(conn, raw); err != nil || closeAfter {
				return
			}
		}
	})
}

// TestHTTP2RequestsOverHTTP1Framing sends HTTP/2 requests to HTTP/1.1
// targets that answer in every framing HTTP/1.1 has.
func TestHTTP2RequestsOverHTTP1Framing(t *testing.T) {
	be := scriptedBackend(t, func(path string) (string, bool) {
		switch path {
		case "/chunked-trailers":
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\nX-Sum: 42\r\n\r\n", false
		case "/until-eof":
			return "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", true
		case "/no-content":
			return "HTTP/1.1 204 No Content\r\nX-Hop: 1\r\nX-Kept: yes\r\nConnection: keep-alive, x-hop\r\nKeep-Alive: timeout=5\r\n\r\n", false
		case "/broken":
			return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b", true
		case "/malformed":
			return "HTTP/1.1 two hundred\r\n\r\n", true
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfixed", false
	})
	lb := start(t, webConfig(serving("a", be)))
	base := "http://" + lb.Addr("web")
	client := h2cClient()
	cases := []struct {
		path, body string
		status     int
		trailer    string
		headerOK   func(http.Header) bool
	}{
		// The answer has the target's fields only: no Content-Type sniffed
		// from the body, no Date, as an HTTP/1.1 client gets it.
		{"/fixed", "fixed", 200, "", func(h http.Header) bool { return h["Content-Type"] == nil && h["Date"] == nil }},
		{"/chunked-trailers", "hello world", 200, "42", nil},
		{"/until-eof", "until the end", 200, "", nil},
		{"/no-content", "", 204, "", func(h http.Header) bool {
			return h.Get("X-Hop") == "" && h.Get("Keep-Alive") == "" && h.Get("X-Kept") == "yes"
		}},
		{"/malformed", "502 Bad Gateway\n", 502, "", nil},
	}
	for _, c := range cases {
		resp, err := client.Get(base + c.path)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != c.body || resp.StatusCode != c.status || resp.Trailer.Get("X-Sum") != c.trailer {
			t.Errorf("%s: %d %q trailer %q (%v), want %d %q trailer %q", c.path, resp.StatusCode, body, resp.Trailer.Get("X-Sum"), err, c.status, c.body, c.trailer)
		}
		if c.headerOK != nil && !c.headerOK(resp.Header) {
			t.Errorf("%s: header %v", c.path, resp.Header)
		}
	}

	// A response that breaks off mid-body resets the client's stream, and
	// the target's in-flight count goes back to zero.
	resp, err := client.Get(base + "/broken")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("a response cut mid-body reached the client whole")
	}
	eventually(t, "the target's in-flight count back to 0 after a broken response", func() bool { return lb.Targets()[0].InFlight == 0 })
	assertNoBusyConnections(t, lb)
}

// assertNoBusyConnections checks that no connection to a target is still
// tracked as busy once every request ended: each went back to the pool or
// was closed, so Terminate sees only connections in use.
func assertNoBusyConnections(t *testing.T, lb *Balancer) {
	t.Helper()
	eventually(t, "no connection to a target tracked as busy", func() bool {
		lb.mu.Lock()
		defer lb.mu.Unlock()
		for _, ts := range lb.targets {
			ts.Mu.Lock()
			busy := len(ts.Busy)
			ts.Mu.Unlock()
			if busy > 0 {
				return false
			}
		}
		return true
	})
}

func TestHTTP2RequestBodiesOverHTTP1(t *testing.T) {
	type seen struct {
		length   int64
		chunked  bool
		body     string
		expected bool
	}
	got := make(chan seen, 1)
	be := backend(t, "", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.ContentLength, len(r.TransferEncoding) > 0, string(b), r.Header.Get("Expect") != ""}
		io.WriteString(w, strconv.Itoa(len(b)))
	})
	lb := start(t, webConfig(serving("a", addrOf(be))))
	url := "http://" + lb.Addr("web") + "/upload"
	big := strings.Repeat("0123456789", 20_000)
	for _, c := range []struct {
		name   string
		body   io.Reader
		length int64
	}{
		{"known length", strings.NewReader(big), int64(len(big))},
		{"unknown length", io.MultiReader(strings.NewReader(big[:100_000]), strings.NewReader(big[100_000:])), -1},
	} {
		req, _ := http.NewRequest("POST", url, c.body)
		req.ContentLength = c.length
		req.Header.Set("Expect", "100-continue")
		resp, err := h2cClient().Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s := <-got
		if string(answer) != strconv.Itoa(len(big)) || s.body != big || s.length != c.length || s.chunked != (c.length < 0) || s.expected {
			t.Errorf("%s: the target saw length %d chunked %v expect %v and %d bytes (equal: %v); the client got %q",
				c.name, s.length, s.chunked, s.expected, len(s.body), s.body == big, answer)
		}
	}
}

func TestHTTP2RequestsShareHTTP1Connections(t *testing.T) {
	var accepted int
	acceptedCh := make(chan struct{}, 100)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				acceptedCh <- struct{}{}
			}
		}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	lb := start(t, webConfig(serving("a", ln.Addr().String())))
	client := h2cClient()
	for range 20 {
		if code, body, _ := get(t, client, "http://"+lb.Addr("web")+"/"); code != 200 || body != "ok" {
			t.Fatalf("%d %q", code, body)
		}
	}
	for len(acceptedCh) > 0 {
		<-acceptedCh
		accepted++
	}
	if accepted != 1 {
		t.Errorf("20 requests one after another took %d connections to the target, want 1", accepted)
	}
}
