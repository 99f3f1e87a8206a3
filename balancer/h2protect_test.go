package balancer

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/berth-lb/berth/balancer/h2conn"
)

// The protections of berth's HTTP/2 server against hostile clients, each
// attacked by a client that speaks raw frames over h2c.

// hostileH2 is a raw HTTP/2 client connection: the preface and the given
// SETTINGS are sent; the server's frames are read only when asked.
type hostileH2 struct {
	conn  net.Conn
	fr    *http2.Framer
	block bytes.Buffer
	enc   *hpack.Encoder
	// noAck leaves the server's SETTINGS unacknowledged: another goroutine
	// writes frames that nothing may come between.
	noAck bool
}

func dialHostileH2(t *testing.T, addr string, settings ...http2.Setting) *hostileH2 {
	t.Helper()
	conn := dial(t, addr)
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	h := &hostileH2{conn: conn, fr: http2.NewFramer(conn, bufio.NewReader(conn))}
	h.enc = hpack.NewEncoder(&h.block)
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.fr.MaxHeaderListSize = 1 << 20
	if _, err := io.WriteString(conn, h2conn.Preface); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	return h
}

// headers is the HPACK block of a GET of path with the extra fields.
func (h *hostileH2) headers(path string, extra ...hpack.HeaderField) []byte {
	h.block.Reset()
	for _, f := range append([]hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "hostile"}, {Name: ":path", Value: path}}, extra...) {
		h.enc.WriteField(f)
	}
	return h.block.Bytes()
}

// untilEnd reads frames, acknowledging SETTINGS, until the connection ends
// (GOAWAY, EOF or reset) or until stop returns true, and reports whether
// the connection ended and with which GOAWAY code.
func (h *hostileH2) untilEnd(stop func(http2.Frame) bool) (ended bool, goAway *http2.GoAwayFrame) {
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return errTimeout(err) == nil, goAway
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() && !h.noAck {
				h.fr.WriteSettingsAck()
			}
		case *http2.GoAwayFrame:
			goAway = f
		}
		if stop != nil && stop(f) {
			return false, goAway
		}
	}
}

// errTimeout is err when it is a deadline that expired, else nil: a
// connection that merely went quiet has not ended.
func errTimeout(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return nil
}

// TestH2RapidResetIsCutOff opens and at once resets streams in a loop
// (CVE-2023-44487): the connection is closed, and the target sees a bounded
// part of those requests, not one per stream.
func TestH2RapidResetIsCutOff(t *testing.T) {
	var seen atomic.Int64
	lb := start(t, webConfig(serving("a", rawBackend(t, "ok", &seen, nil))))
	h := dialHostileH2(t, lb.Addr("web"))
	const streams = 20000
	sent := make(chan int, 1)
	go func() {
		var batch bytes.Buffer
		out := http2.NewFramer(&batch, nil)
		n := 0
		for id := uint32(1); n < streams; id += 2 {
			out.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.headers("/"), EndStream: true, EndHeaders: true})
			out.WriteRSTStream(id, http2.ErrCodeCancel)
			if n++; n%100 == 0 {
				if _, err := h.conn.Write(batch.Bytes()); err != nil {
					break
				}
				batch.Reset()
			}
		}
		sent <- n
	}()
	ended, _ := h.untilEnd(nil)
	n := <-sent
	if !ended {
		t.Fatalf("the connection still stood after %d streams opened and reset", n)
	}
	// Each request the target saw was a stream whose handler had started
	// before its reset was read; far fewer than the streams sent.
	if got := seen.Load(); got > streams/4 {
		t.Fatalf("the target saw %d of the %d reset streams' requests", got, n)
	}
	t.Logf("%d streams sent before the cut, %d reached the target", n, seen.Load())
}

// TestH2ContinuationFloodIsCutOff sends a header block that never ends, one
// CONTINUATION after another (the CVE-2024-27316 class): the server stops
// the connection once the block passes its limit, before the block ends.
func TestH2ContinuationFloodIsCutOff(t *testing.T) {
	lb := start(t, webConfig(serving("a", namedRawBackend(t, "ok"))))
	h := dialHostileH2(t, lb.Addr("web"))
	// Valid HPACK all along: a literal field, new name, 4 KiB value, again and again.
	fragment := h.headers("/", hpack.HeaderField{Name: "x-flood", Value: strings.Repeat("f", 4<<10)})
	const limit = 64 << 20 // far more than any buffer between client and server
	h.noAck = true
	written := make(chan int, 1)
	go func() {
		total := 0
		err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: fragment, EndStream: true})
		for err == nil && total < limit {
			h.block.Reset()
			h.enc.WriteField(hpack.HeaderField{Name: "x-flood", Value: strings.Repeat("f", 4<<10)})
			err = h.fr.WriteContinuation(1, false, h.block.Bytes())
			total += h.block.Len()
		}
		written <- total
	}()
	ended, goAway := h.untilEnd(nil)
	total := <-written
	if !ended || total >= limit {
		t.Fatalf("the server took %d bytes of one header block (ended %v, GOAWAY %v)", total, ended, goAway)
	}
}

// TestH2ControlFloodsAreBounded sends SETTINGS or PING frames without ever
// reading the answers. What the server keeps for them is bounded: it
// answers many SETTINGS with one ACK, and closes the connection of a client
// whose PING answers it cannot send (more than 10,000 queued).
func TestH2ControlFloodsAreBounded(t *testing.T) {
	lb := start(t, webConfig(serving("a", namedRawBackend(t, "ok"))))
	for _, flood := range []struct {
		name  string
		frame func(fr *http2.Framer, i uint64) error
		// frames is far more than socket buffers and the server's write
		// queue hold, in bytes: 7.5 MiB of SETTINGS, 34 MiB of PING.
		frames uint64
		cut    bool
	}{
		{"SETTINGS", func(fr *http2.Framer, _ uint64) error {
			return fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0})
		}, 500_000, false},
		{"PING", func(fr *http2.Framer, i uint64) error {
			var data [8]byte
			for b := range data {
				data[b] = byte(i >> (8 * b))
			}
			return fr.WritePing(false, data)
		}, 2_000_000, true},
	} {
		t.Run(flood.name, func(t *testing.T) {
			before := heapInUse()
			h := dialHostileH2(t, lb.Addr("web"))
			var batch bytes.Buffer
			out := http2.NewFramer(&batch, nil)
			var err error
			i := uint64(0)
			for ; i < flood.frames && err == nil; i++ {
				flood.frame(out, i)
				if batch.Len() > 32<<10 {
					_, err = h.conn.Write(batch.Bytes())
					batch.Reset()
				}
			}
			if flood.cut != (err != nil) {
				t.Fatalf("after %d %s frames from a client that reads none of the answers: write error %v, want the connection cut %v", i, flood.name, err, flood.cut)
			}
			// The answers never read: the server holds what the socket and
			// its write queue take, not a queue that grows per frame.
			if grown := heapInUse() - before; grown > 8<<20 {
				t.Fatalf("the heap grew by %d bytes during a %s flood", grown, flood.name)
			}
		})
	}
}

// heapInUse is the heap in use after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// TestH2ZeroWindowClientIsLetGo asks for a large response with a stream
// window of 0 that it never opens: the server holds a bounded part of the
// response, gives up on the stream after the idle timeout, and the target's
// connection is closed.
func TestH2ZeroWindowClientIsLetGo(t *testing.T) {
	lb, writeFailed := startWithBigResponses(t)
	h := dialHostileH2(t, lb.Addr("web"), http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h.headers("/big"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	var reset atomic.Bool
	go h.untilEnd(func(f http2.Frame) bool {
		if f, ok := f.(*http2.RSTStreamFrame); ok && f.StreamID == 1 {
			reset.Store(true)
		}
		return false
	})
	select {
	case <-writeFailed:
	case <-time.After(5 * time.Second):
		t.Fatal("the target still writes 5 s after the client's window stayed shut (idle timeout 1 s)")
	}
	eventually(t, "the client's stream reset", reset.Load)
	eventually(t, "nothing in flight to the target", func() bool { return lb.Targets()[0].InFlight == 0 })
}

// TestH2StreamsBeyondTheLimitAreRefused opens more streams at once than the
// server's SETTINGS_MAX_CONCURRENT_STREAMS while the target holds every
// request: those beyond the limit are reset (REFUSED_STREAM or
// PROTOCOL_ERROR, RFC 9113 5.1.2) and never reach the target.
func TestH2StreamsBeyondTheLimitAreRefused(t *testing.T) {
	var seen atomic.Int64
	release := make(chan struct{})
	be := rawBackend(t, "ok", &seen, release)
	lb := start(t, webConfig(serving("a", be)))
	defer close(release)
	h := dialHostileH2(t, lb.Addr("web"))
	var limit uint32
	h.untilEnd(func(f http2.Frame) bool {
		s, ok := f.(*http2.SettingsFrame)
		if ok && !s.IsAck() {
			limit, _ = s.Value(http2.SettingMaxConcurrentStreams)
			return true
		}
		return false
	})
	if limit == 0 || limit > 1000 {
		t.Fatalf("the server announced SETTINGS_MAX_CONCURRENT_STREAMS %d, want a bound", limit)
	}
	const extra = 5
	for i := range limit + extra {
		if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 2*i + 1, BlockFragment: h.headers("/"), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	refused := 0
	h.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	ended, _ := h.untilEnd(func(f http2.Frame) bool {
		if f, ok := f.(*http2.RSTStreamFrame); ok && (f.ErrCode == http2.ErrCodeRefusedStream || f.ErrCode == http2.ErrCodeProtocol) {
			refused++
		}
		return refused == extra
	})
	if ended || refused != extra {
		t.Fatalf("%d of the %d streams beyond the limit %d were refused (connection ended %v)", refused, extra, limit, ended)
	}
	eventually(t, "the target holding the streams within the limit", func() bool { return seen.Load() == int64(limit) })
	if got := seen.Load(); got > int64(limit) {
		t.Fatalf("the target saw %d requests, more than the limit %d", got, limit)
	}
}

// TestH2OversizedHeaderListIsRefused sends header lists larger than the
// announced SETTINGS_MAX_HEADER_LIST_SIZE (64 KiB and the Framer's margin), over
// CONTINUATION frames. One that goes over the limit in its last frame is
// answered 431; one with frames still to come after it went over ends the
// connection (GOAWAY) rather than be read on (RFC 9113 10.5.1). The target
// sees neither.
func TestH2OversizedHeaderListIsRefused(t *testing.T) {
	var seen atomic.Int64
	lb := start(t, webConfig(serving("a", rawBackend(t, "ok", &seen, nil))))
	for _, tc := range []struct {
		name            string
		fields, size    int
		want431, goAway bool
	}{
		{"over in the last frame", 9, 7600, true, false},
		{"far over", 10, 8 << 10, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := dialHostileH2(t, lb.Addr("web"))
			var fields []hpack.HeaderField
			for i := range tc.fields {
				fields = append(fields, hpack.HeaderField{Name: "x-big-" + string(rune('a'+i)), Value: strings.Repeat("v", tc.size)})
			}
			block := h.headers("/", fields...)
			const frame = 16 << 10
			if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:frame], EndStream: true}); err != nil {
				t.Fatal(err)
			}
			for rest := block[frame:]; len(rest) > 0; {
				n := min(frame, len(rest))
				if err := h.fr.WriteContinuation(1, n == len(rest), rest[:n]); err != nil {
					break // the server may have closed already
				}
				rest = rest[n:]
			}
			status := ""
			ended, goAway := h.untilEnd(func(f http2.Frame) bool {
				if m, ok := f.(*http2.MetaHeadersFrame); ok && m.StreamID == 1 {
					status = m.PseudoValue("status")
					return true
				}
				_, reset := f.(*http2.RSTStreamFrame)
				return reset
			})
			if (status == "431") != tc.want431 || (ended && goAway != nil) != tc.goAway {
				t.Fatalf("a header list of %d fields of %d bytes got status %q, connection ended %v with GOAWAY %v; want 431 %v, GOAWAY %v",
					tc.fields, tc.size, status, ended, goAway, tc.want431, tc.goAway)
			}
		})
	}
	if seen.Load() != 0 {
		t.Fatal("the target got a request whose header list was over the limit")
	}
}
