package h2server

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// serve serves h on a loopback listener and returns its address.
func serve(t *testing.T, h Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	srv := &Server{Handler: h, MaxHeaderListSize: 64 << 10, IdleTimeout: 5 * time.Second}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(context.Background(), conn, conn, nil)
		}
	}()
	return ln.Addr().String()
}

// h2cClient speaks h2c with prior knowledge.
func h2cClient() *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
}

// TestBodyWindowComesBackAsItIsRead uploads more than the connection's and
// the stream's windows: the upload completes only if the server gives the
// windows back as its handler reads.
func TestBodyWindowComesBackAsItIsRead(t *testing.T) {
	addr := serve(t, HandlerFunc(func(s *Stream) {
		n, err := io.Copy(io.Discard, s.Request.Body)
		if err != nil {
			s.WriteHeader(500)
			return
		}
		io.WriteString(s, strconv.FormatInt(n, 10))
	}))
	const size = 3*connWindow + 12345
	resp, err := h2cClient().Post("http://"+addr+"/", "application/octet-stream", bytes.NewReader(make([]byte, size)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(got) != strconv.Itoa(size) {
		t.Fatalf("answer %d %q, want 200 %q", resp.StatusCode, got, strconv.Itoa(size))
	}
}

// TestBodyBeyondTheWindowIsRefused sends a body past the windows the server
// announced, to a handler that reads none of it: the server refuses it
// (FLOW_CONTROL_ERROR) instead of holding it.
func TestBodyBeyondTheWindowIsRefused(t *testing.T) {
	addr := serve(t, HandlerFunc(func(s *Stream) { <-s.Context().Done() }))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte(http2.ClientPreface))
	fr := http2.NewFramer(conn, conn)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/"}, {":authority", "example.com"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	refused := make(chan http2.ErrCode, 1)
	go func() {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				close(refused)
				return
			}
			switch f := f.(type) {
			case *http2.RSTStreamFrame:
				refused <- f.ErrCode
				return
			case *http2.GoAwayFrame:
				refused <- f.ErrCode
				return
			}
		}
	}()
	chunk := make([]byte, maxFrame)
	for sent := 0; sent <= connWindow; sent += len(chunk) {
		if err := fr.WriteData(1, false, chunk); err != nil {
			break
		}
	}
	if code, ok := <-refused; !ok || code != http2.ErrCodeFlowControl {
		t.Fatalf("a body past the windows got %v (answered %v), want FLOW_CONTROL_ERROR", code, ok)
	}
}
