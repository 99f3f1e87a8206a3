package h2server

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/berth-lb/berth/internal/tcppair"
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
			go srv.ServeConn(context.Background(), conn, nil)
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

// TestWorkersAreReusedThenEnd serves a burst of concurrent streams: their
// workers are kept and serve the next streams, and end once they stay idle
// from one sweep to the next (the sweeps are called here, not waited for).
func TestWorkersAreReusedThenEnd(t *testing.T) {
	const burst = 20
	started, release := make(chan struct{}, burst), make(chan struct{})
	addr := serve(t, HandlerFunc(func(s *Stream) {
		if s.Request.Path == "/burst" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(s, "done")
	}))
	client := h2cClient()
	get := func(path string) error {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "done" {
			return fmt.Errorf("answer %d %q", resp.StatusCode, b)
		}
		return nil
	}
	errs := make(chan error, burst)
	for range burst {
		go func() { errs <- get("/burst") }()
	}
	for range burst {
		<-started
	}
	close(release)
	for range burst {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { idle, _ := workerCounts(); return idle >= burst }, "the burst's workers parked")
	// Streams one after another take a parked worker each time.
	_, before := workerCounts()
	for range 10 {
		if err := get("/"); err != nil {
			t.Fatal(err)
		}
	}
	if _, after := workerCounts(); after != before {
		t.Errorf("%d workers started for 10 streams while %d were parked, want none", after-before, burst)
	}
	sweepWorkers() // ends those idle since the last sweep: some or none
	sweepWorkers() // ends every worker idle since the one above
	if idle, _ := workerCounts(); idle != 0 {
		t.Fatalf("%d workers still parked after two sweeps without a stream, want none", idle)
	}
}

// waitFor polls cond until it holds, for up to 10 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
	}
}

// TestRapidResetCutsOff sends a client's streams, some reset at once, and
// checks which connections the server cuts off (GOAWAY ENHANCE_YOUR_CALM):
// only those of a client that resets most of many streams.
func TestRapidResetCutsOff(t *testing.T) {
	for _, tc := range []struct {
		name           string
		streams, reset int // reset: every reset-th stream is reset (1: all, 0: none)
		cut            bool
	}{
		{"no resets", 1000, 0, false},
		{"a few resets", 1000, 10, false},
		{"half reset", 2000, 2, false},
		{"every stream reset, a few", freeResets, 1, false},
		{"every stream reset, many", 1000, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wire bytes.Buffer
			wire.WriteString(http2.ClientPreface)
			fr := http2.NewFramer(&wire, nil)
			fr.WriteSettings()
			var block bytes.Buffer
			enc := hpack.NewEncoder(&block)
			for i := range tc.streams {
				id := uint32(2*i + 1)
				block.Reset()
				for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "a.example"}} {
					enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
				}
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true})
				if tc.reset > 0 && i%tc.reset == 0 {
					fr.WriteRSTStream(id, http2.ErrCodeCancel)
				}
			}
			fr.WritePing(false, [8]byte{'e', 'n', 'd'}) // answered once every frame before it was read
			in := sendRaw(t, &Server{Handler: HandlerFunc(func(s *Stream) {}), MaxConcurrentStreams: 100000}, wire.Bytes())
			for {
				f, err := in.ReadFrame()
				if err != nil {
					t.Fatalf("no GOAWAY nor the PING's answer: %v", err)
				}
				switch f := f.(type) {
				case *http2.GoAwayFrame:
					if !tc.cut || f.ErrCode != http2.ErrCodeEnhanceYourCalm {
						t.Fatalf("GOAWAY %v, want %v", f.ErrCode, map[bool]string{true: "ENHANCE_YOUR_CALM", false: "none"}[tc.cut])
					}
					return
				case *http2.PingFrame:
					if f.IsAck() && f.Data == [8]byte{'e', 'n', 'd'} {
						if tc.cut {
							t.Fatal("the connection stood after every frame was read, want it cut off")
						}
						return
					}
				}
			}
		})
	}
}

// TestUnreadableHeaderBlockEndsTheConnection sends a HEADERS frame without
// END_HEADERS whose padding is longer than its payload, then the
// CONTINUATION (empty) that ends its block: the block cannot be decoded (the HPACK
// table would fall behind the client's), so the connection ends with
// GOAWAY PROTOCOL_ERROR, and nothing panics (FuzzServeConn found the
// CONTINUATION reaching a block never begun).
func TestUnreadableHeaderBlockEndsTheConnection(t *testing.T) {
	var wire bytes.Buffer
	wire.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&wire, nil)
	fr.WriteSettings()
	// A HEADERS frame of stream 3: flags PADDED, pad length 48 in a 2-byte payload.
	wire.Write([]byte{0, 0, 2, byte(http2.FrameHeaders), byte(http2.FlagHeadersPadded), 0, 0, 0, 3, 48, 0x82})
	fr.WriteContinuation(3, true, nil) // empty: no fragment size check stops it
	in := sendRaw(t, &Server{Handler: HandlerFunc(func(s *Stream) {})}, wire.Bytes())
	for {
		f, err := in.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY before the connection ended: %v", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			if g.ErrCode != http2.ErrCodeProtocol {
				t.Fatalf("GOAWAY %v, want PROTOCOL_ERROR", g.ErrCode)
			}
			return
		}
	}
}

// sendRaw serves a loopback connection with srv, sends it wire (a client's
// bytes, the preface first) and returns a reader of the server's frames,
// which fails 20 s on.
func sendRaw(t *testing.T, srv *Server, wire []byte) *http2.Framer {
	t.Helper()
	client, server := tcppair.Loopback(t)
	go srv.ServeConn(context.Background(), server, nil)
	go client.Write(wire)
	client.SetReadDeadline(time.Now().Add(20 * time.Second))
	return http2.NewFramer(nil, client)
}
