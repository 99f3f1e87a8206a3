package balancer

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/berth-lb/berth/balancer/h2conn"
	"github.com/berth-lb/berth/internal/h2raw"
)

// TestH2InboundFollowsSplitHeaderBlocks sends header blocks split over a
// padded HEADERS frame with a priority and a CONTINUATION, on one
// connection whose HPACK table fills as it goes: Inbound must find a
// connection-specific field in them, and hand the others on intact.
func TestH2InboundFollowsSplitHeaderBlocks(t *testing.T) {
	rb := newRecordingBackend(t)
	lb := start(t, webConfig(serving("a", rb.addr)))
	c, err := h2raw.Dial(lb.Addr("web"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Split = true
	for i, tc := range []struct {
		fields [][2]string
		want   h2raw.Answer
	}{
		{h2raw.Fields("GET", "/one", "a.example", "x-long", strings.Repeat("v", 300)), h2raw.Answer{Status: 200, Body: "recorded"}},
		{h2raw.Fields("GET", "/two", "a.example", "x-long", strings.Repeat("v", 300), "keep-alive", "timeout=5"), h2raw.Answer{Reset: http2.ErrCodeProtocol}},
		{h2raw.Fields("GET", "/three", "a.example", "x-long", strings.Repeat("v", 300), "te", "trailers"), h2raw.Answer{Status: 200, Body: "recorded"}},
		{h2raw.Fields("GET", "/four", "a.example", "upgrade", "h2c"), h2raw.Answer{Reset: http2.ErrCodeProtocol}},
		{h2raw.Fields("GET", "/five", "a.example", "x-long", strings.Repeat("v", 300)), h2raw.Answer{Status: 200, Body: "recorded"}},
	} {
		got, err := c.Do(tc.fields, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got != tc.want {
			t.Errorf("request %d (%s): %v, want %v", i, tc.fields[2][1], got, tc.want)
		}
	}
	sent := string(rb.take())
	if n := strings.Count(sent, strings.Repeat("v", 300)); n != 3 || strings.Contains(sent, "/two") || strings.Contains(sent, "/four") {
		t.Errorf("the target received %q, want /one, /three and /five with their x-long", sent)
	}
}

// BenchmarkH2Inbound is what Inbound costs a request: its frames (a
// header block as a browser's, a WINDOW_UPDATE) read through it.
func BenchmarkH2Inbound(b *testing.B) {
	var stream, block bytes.Buffer
	fr := http2.NewFramer(&stream, nil)
	enc := hpack.NewEncoder(&block)
	const requests = 1000
	for i := range requests {
		block.Reset()
		for _, f := range h2raw.Fields("GET", "/static/app.js?v=1", "www.example.com",
			"user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
			"accept", "*/*", "accept-language", "en-US,en;q=0.5", "accept-encoding", "gzip, deflate, br",
			"cookie", "session=0123456789abcdef", "te", "trailers") {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true})
		fr.WriteWindowUpdate(0, 1000)
	}
	frames := append([]byte(h2conn.Preface), stream.Bytes()...)
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(frames) / requests))
	b.ReportAllocs()
	for i := 0; i < b.N; i += requests {
		in := h2conn.NewInbound(bytes.NewReader(frames))
		for {
			if _, err := in.Read(buf); err == io.EOF {
				break
			}
		}
	}
}
