package h2server

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/berth-lb/berth/internal/tcppair"
)

// clientFrames is what a client sends after the preface, made with x/net's
// Framer and HPACK encoder.
func clientFrames(write func(fr *http2.Framer, block func(fields ...string) []byte)) []byte {
	var out, hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	block := func(fields ...string) []byte {
		hb.Reset()
		for i := 0; i+1 < len(fields); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return bytes.Clone(hb.Bytes())
	}
	fr := http2.NewFramer(&out, nil)
	fr.WriteSettings()
	write(fr, block)
	return out.Bytes()
}

var get = []string{":method", "GET", ":scheme", "http", ":path", "/", ":authority", "example.com"}

// FuzzServeConn sends arbitrary bytes after the preface to a connection
// whose handler reads the request body and answers with a body and a
// trailer, then closes its sending side: whatever the bytes, the server
// neither panics nor hangs (ServeConn returns once the client is gone and
// its streams end). Seeds: the three below and testdata/fuzz/FuzzServeConn
// (inputs a first fuzzing run found new paths with).
func FuzzServeConn(f *testing.F) {
	f.Add(clientFrames(func(fr *http2.Framer, block func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(get...), EndStream: true, EndHeaders: true})
	}))
	f.Add(clientFrames(func(fr *http2.Framer, block func(...string) []byte) {
		post := []string{":method", "POST", ":scheme", "https", ":path", "/upload", ":authority", "example.com", "content-length", "5", "trailer", "x-sum"}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(post...), EndHeaders: true})
		fr.WriteData(1, false, []byte("hel"))
		fr.WriteData(1, false, []byte("lo"))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block("x-sum", "5"), EndStream: true, EndHeaders: true})
	}))
	f.Add(clientFrames(func(fr *http2.Framer, block func(...string) []byte) {
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1}, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 14})
		fr.WritePing(false, [8]byte{1})
		b := block(get...)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: b[:2], EndStream: true})
		fr.WriteContinuation(3, true, b[2:])
		fr.WriteWindowUpdate(3, 10)
		fr.WriteWindowUpdate(0, 10)
		fr.WriteRSTStream(3, http2.ErrCodeCancel)
		fr.WritePriority(5, http2.PriorityParam{StreamDep: 5})
		fr.WriteGoAway(3, http2.ErrCodeNo, nil)
	}))
	f.Fuzz(func(t *testing.T, frames []byte) {
		client, server := tcppair.Loopback(t)
		// Both ends close with a reset, not into TIME_WAIT: thousands of
		// inputs a second would fill the loopback's port space in a minute,
		// and each connect would then crawl through it.
		client.SetLinger(0)
		server.SetLinger(0)
		srv := &Server{Handler: HandlerFunc(func(s *Stream) {
			io.Copy(io.Discard, s.Request.Body)
			s.Write([]byte("answer"))
			s.AddTrailer("x-done", "yes")
		}), MaxConcurrentStreams: 4, MaxHeaderListSize: 4 << 10, IdleTimeout: time.Second}
		served := make(chan struct{})
		go func() {
			defer close(served)
			srv.ServeConn(context.Background(), server, nil)
		}()
		go io.Copy(io.Discard, client)
		client.Write([]byte(http2.ClientPreface))
		client.Write(frames)
		client.CloseWrite()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Fatal("ServeConn still runs 10 s after the client stopped sending")
		}
	})
}
