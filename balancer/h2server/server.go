// Package h2server is berth's HTTP/2 server: the connection engine under
// the HTTP/2 front (balancer/httpfront/h2front), which knows nothing of
// routes or targets. It serves the streams of one client connection to a
// Handler, which reads a Stream's Request and writes its answer on the
// Stream. golang.org/x/net/http2's server did this job behind net/http's
// Handler; it sends every frame a handler writes to one goroutine over a
// channel and waits for it (a channel round trip and a select per frame,
// half of berth's CPU under many small streams), and net/http's Request,
// Header map, URL and context cost a dozen allocations per stream. Here
//
//   - the connection's own goroutine reads and decodes frames
//     (http2.Framer, HPACK), keeps the stream states, flow-control windows
//     and SETTINGS of RFC 9113, answers PING and SETTINGS, and hands each
//     request to a goroutine of its own (a reused one: workers.go);
//   - a handler writes its HEADERS and DATA itself, under the connection's
//     write lock, into one queue, waiting only for flow-control windows;
//   - one writer goroutine per connection lets every runnable goroutine
//     run before it takes the queue, so the answers of many streams go out
//     in one write (one syscall, one TLS record).
//
// The frames' strictness is the RFC's (h2spec 145/145); a client's abuse
// is bounded: a stream limit with REFUSED_STREAM, a header-list limit (431,
// or GOAWAY beyond it: the Framer's), PING answers that a client does not
// read (cut at maxQueuedPings), SETTINGS answered with one ACK while one
// waits, write and read deadlines per stream, and a write bound per batch.
// A client that resets most of the streams it opens (rapid reset,
// CVE-2023-44487) is cut off; header blocks are decoded as they come, so
// one that never ends is cut at the limit (headers.go).
package h2server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Handler serves streams: it reads s.Request and answers on s. It runs
// concurrently with the other streams of the connection. A panic resets the
// stream (http.ErrAbortHandler is the way to reset it on purpose).
type Handler interface {
	ServeStream(s *Stream)
}

// HandlerFunc is a function as a Handler.
type HandlerFunc func(s *Stream)

func (f HandlerFunc) ServeStream(s *Stream) { f(s) }

// Server serves HTTP/2 connections.
type Server struct {
	Handler Handler
	// MaxConcurrentStreams is announced and held to (0: 250).
	MaxConcurrentStreams uint32
	// MaxHeaderListSize is announced; a request over it is answered 431.
	MaxHeaderListSize uint32
	// IdleTimeout ends a connection without streams for that long, and
	// bounds each write to the client: one that takes nothing for it is
	// let go. 0: none.
	IdleTimeout time.Duration
	// Recovered reports a panic of a connection's writer goroutine, which
	// ends that connection only.
	Recovered func(v any)
}

// maxQueued bounds the frames waiting for a client that reads slowly:
// stream writers wait above it.
const maxQueued = 256 << 10

// keptWriteBuffer is the largest write buffer a connection keeps between
// writes.
const keptWriteBuffer = 64 << 10

// maxQueuedPings is how many PING answers may wait for a client that does
// not read them before its connection is cut.
const maxQueuedPings = 10000

const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

const (
	initialWindow  = 65535
	streamWindow   = 1 << 20 // what the server lets a client send per stream
	connWindow     = 1 << 20
	maxFrame       = 16 << 10
	defaultStreams = 250
)

type conn struct {
	srv *Server
	nc  net.Conn
	ctx context.Context
	tls *tls.ConnectionState
	fr  *http2.Framer // reads; writes go through wfr

	wmu        sync.Mutex
	flow       *sync.Cond // waits for send windows
	wfr        *http2.Framer
	henc       *hpack.Encoder
	hw         *sliceWriter
	sendConn   int64
	peerWindow int64
	peerFrame  uint32
	// recvConn is what the client may still send on the connection
	// (guarded by wmu).
	recvConn    int64
	werr        error              // ends the streams' writes: the connection failed or ended
	writeFailed bool               // a write to the client failed
	streams     map[uint32]*Stream // guarded by wmu
	out         *sliceWriter       // frames not yet written, guarded by wmu
	wake        chan struct{}
	woken       bool // guarded by wmu
	// maxSeen is the highest stream the client opened, settingsAcked
	// whether it acknowledged the server's SETTINGS; both the reading
	// goroutine's.
	maxSeen       uint32 // guarded by wmu too: GoAway reads it
	settingsAcked bool
	maxStreams    uint32
	// hb is the header block being decoded; opened and resets count the
	// client's HEADERS and RST_STREAM frames (all the reading goroutine's).
	hb             headerBlock
	opened, resets int
	// pingsQueued and settingsAckQueued count the answers in out
	// (guarded by wmu).
	pingsQueued       int
	settingsAckQueued bool
	// goingAway: GOAWAY sent; the connection closes once its streams end
	// (guarded by wmu). idleSince: when the last stream ended.
	goingAway, closing bool
	idleSince          time.Time
	idle               time.Duration
}

// Conn is one client connection being served.
type Conn struct{ c *conn }

// GoAway sends GOAWAY: no new stream is taken, and the connection closes
// once its streams are done.
func (h *Conn) GoAway() {
	c := h.c
	c.wmu.Lock()
	if !c.goingAway {
		c.goingAway = true
		c.wfr.WriteGoAway(c.maxSeen, http2.ErrCodeNo, nil)
	}
	closeNow := len(c.streams) == 0
	c.unlock()
	if closeNow {
		c.closeAfterFlush()
	}
}

// goAwayGrace is how long a connection that sent GOAWAY and has no stream
// left still reads: the client's frames in flight (a PING, its own GOAWAY)
// are taken rather than met with a reset.
const goAwayGrace = time.Second

// lingerAfterError and maxLingerBytes bound what is read after a
// connection error, before the connection closes.
const (
	lingerAfterError = 250 * time.Millisecond
	maxLingerBytes   = 1 << 20
)

// closeAfterFlush ends the reading loop after goAwayGrace, unless the
// client closes first; what is queued still goes out.
func (c *conn) closeAfterFlush() {
	c.wmu.Lock()
	closing := c.closing
	c.closing = true
	c.wmu.Unlock()
	if !closing {
		time.AfterFunc(goAwayGrace, func() { c.nc.SetReadDeadline(time.Now()) })
	}
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// ServeConn serves nc until it ends, and closes it. ctx is every stream's
// parent context; started, when not nil, gets the connection once it is
// served (for GoAway).
func (s *Server) ServeConn(ctx context.Context, nc net.Conn, started func(*Conn)) {
	c := &conn{srv: s, nc: nc, ctx: ctx, sendConn: initialWindow, recvConn: connWindow, peerWindow: initialWindow, peerFrame: maxFrame,
		streams: map[uint32]*Stream{}, idle: s.IdleTimeout, idleSince: time.Now()}
	if tc, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		st := tc.ConnectionState()
		c.tls = &st
	}
	c.flow = sync.NewCond(&c.wmu)
	c.hw = &sliceWriter{}
	c.henc = hpack.NewEncoder(c.hw)
	defer nc.Close()
	br := bufio.NewReaderSize(nc, 4<<10)
	var p [len(preface)]byte
	if _, err := io.ReadFull(br, p[:]); err != nil || string(p[:]) != preface {
		return
	}
	c.fr = http2.NewFramer(nil, br)
	c.fr.SetReuseFrames() // a DATA frame's payload is copied (requestBody.put) before the next is read
	c.initHeaderBlocks()
	c.out = &sliceWriter{}
	c.wake = make(chan struct{}, 1)
	c.wfr = http2.NewFramer(c.out, nil)
	c.fr.SetMaxReadFrameSize(maxFrame)
	done, written := make(chan struct{}), make(chan struct{})
	go func() { defer close(written); c.writeLoop(done) }()
	// The writer's last frames (a GOAWAY) go out before the connection closes.
	defer func() { close(done); <-written }()
	streams := s.MaxConcurrentStreams
	if streams == 0 {
		streams = defaultStreams
	}
	c.maxStreams = streams
	if c.idle > 0 {
		var ticker *time.Timer
		ticker = time.AfterFunc(c.idle/2, func() {
			c.wmu.Lock()
			quiet := len(c.streams) == 0 && time.Since(c.idleSince) >= c.idle
			c.wmu.Unlock()
			if quiet {
				(&Conn{c}).GoAway()
				return
			}
			ticker.Reset(c.idle / 2)
		})
		defer ticker.Stop()
	}
	if started != nil {
		started(&Conn{c})
	}
	c.wmu.Lock()
	c.wfr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: streams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: s.MaxHeaderListSize})
	c.wfr.WriteWindowUpdate(0, connWindow-initialWindow)
	c.unlock()
	err := c.readLoop()
	c.wmu.Lock()
	if c.werr == nil {
		c.werr = errors.New("h2server: connection closed")
	}
	for _, st := range c.streams {
		st.endContext()
		st.body.fail(c.werr)
	}
	c.flow.Broadcast()
	var ce http2.ConnectionError
	isConnErr := errors.As(err, &ce)
	if isConnErr {
		c.wfr.WriteGoAway(c.maxSeen, http2.ErrCode(ce), nil)
	}
	c.unlock()
	if isConnErr && http2.ErrCode(ce) != http2.ErrCodeEnhanceYourCalm {
		// What the client sent after the error is read and dropped, a
		// little of it: closing on unread bytes resets the connection, and
		// the client could lose the GOAWAY that says why. A flood is cut
		// at once.
		nc.SetReadDeadline(time.Now().Add(lingerAfterError))
		io.CopyN(io.Discard, br, maxLingerBytes)
	}
}

// unlock releases wmu and wakes the writer when frames wait.
func (c *conn) unlock() {
	c.wakeWriter()
	c.wmu.Unlock()
}

// wakeWriter wakes the writer when frames wait; the caller holds wmu. At
// most one wake-up is pending (woken), so the send never blocks.
func (c *conn) wakeWriter() {
	if len(c.out.b) > 0 && !c.woken {
		c.woken = true
		c.wake <- struct{}{}
	}
}

// writeLoop writes what the streams queued. It lets every runnable goroutine
// run before it takes the queue, so the answers of many streams go out in
// one write (one TLS record, one syscall).
func (c *conn) writeLoop(done chan struct{}) {
	defer c.recoverWriter()
	w := c.nc
	var spare []byte
	for {
		select {
		case <-c.wake:
		case <-done:
			c.wmu.Lock()
			if len(c.out.b) > 0 && !c.writeFailed {
				// The last frames (a GOAWAY) get a second: a client that
				// reads nothing does not hold the connection open.
				w.SetWriteDeadline(time.Now().Add(goAwayGrace))
				w.Write(c.out.b)
			}
			c.wmu.Unlock()
			return
		}
		runtime.Gosched()
		c.wmu.Lock()
		buf := c.out.b
		c.out.b = spare[:0]
		c.woken = false
		c.pingsQueued, c.settingsAckQueued = 0, false
		c.flow.Broadcast() // writers held back by maxQueued
		c.wmu.Unlock()
		if len(buf) > 0 {
			if c.idle > 0 {
				w.SetWriteDeadline(time.Now().Add(c.idle))
			}
			if _, err := w.Write(buf); err != nil {
				c.wmu.Lock()
				c.werr, c.writeFailed = err, true
				c.flow.Broadcast()
				c.wmu.Unlock()
				c.nc.Close() // a client that takes nothing is let go
			}
		}
		spare = buf
		if cap(spare) > keptWriteBuffer {
			spare = nil // a burst's buffer is not kept by an idle connection
		}
	}
}

// recoverWriter is the backstop of the writer goroutine: a panic ends the
// connection, and the streams waiting to write are released.
func (c *conn) recoverWriter() {
	v := recover()
	if v == nil {
		return
	}
	if c.srv.Recovered != nil {
		c.srv.Recovered(v)
	}
	c.wmu.Lock()
	c.werr = errors.New("h2server: the connection's writer failed")
	c.flow.Broadcast()
	c.wmu.Unlock()
	c.nc.Close()
}

func (c *conn) readLoop() error {
	var se http2.StreamError
	for {
		fh, err := c.fr.ReadFrameHeader()
		var f http2.Frame
		if err == nil {
			f, err = c.fr.ReadFrameForHeader(fh)
		}
		if err != nil {
			switch {
			case errors.As(err, &se) && fh.Type == http2.FrameHeaders:
				// A header block that cannot be decoded leaves the HPACK
				// table behind the client's (RFC 9113 4.3), and a bad
				// padding is a connection error anyway (6.2); its
				// CONTINUATION frames would have no block to go to.
				return protocolError()
			case errors.As(err, &se):
				c.reset(se.StreamID, se.Code)
				continue
			case errors.Is(err, http2.ErrFrameTooLarge):
				return http2.ConnectionError(http2.ErrCodeFrameSize)
			}
			return err
		}
		if err := c.process(f); err != nil {
			if errors.As(err, &se) {
				c.reset(se.StreamID, se.Code)
				continue
			}
			return err
		}
	}
}

func protocolError() error { return http2.ConnectionError(http2.ErrCodeProtocol) }

// freeResets is how many RST_STREAM frames a client may send before its
// share of reset streams counts: a client cancels some requests (a page
// left, a deadline passed), an attacker nearly all. The stream limit bounds
// how many handlers run at once, but a stream reset as soon as it opened
// frees its slot at once: targets would get a request per stream at the
// client's pace.
const freeResets = 200

// tooManyResets reports whether a client that opened streams and sent
// resets RST_STREAM frames resets most of its streams: more than 3 in 4.
func tooManyResets(streams, resets int) bool { return resets > freeResets && 4*resets > 3*streams }

// process handles one frame; a StreamError resets its stream, any other
// error ends the connection (a ConnectionError with GOAWAY).
func (c *conn) process(f http2.Frame) error {
	id := f.Header().StreamID
	switch f := f.(type) {
	case *http2.HeadersFrame:
		c.opened++
		return c.onHeadersFrame(f)
	case *http2.ContinuationFrame:
		if c.hb.meta.HeadersFrame == nil {
			return protocolError() // no header block to continue
		}
		return c.onBlockFragment(f.HeaderBlockFragment(), f.HeadersEnded())
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			c.wmu.Lock()
			if c.pingsQueued++; c.pingsQueued > maxQueuedPings {
				c.wmu.Unlock()
				return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
			}
			c.wfr.WritePing(true, f.Data)
			c.unlock()
		}
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		if id > c.maxSeen {
			return protocolError() // RFC 9113 5.1: idle
		}
		if c.resets++; tooManyResets(c.opened, c.resets) {
			return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
		}
		c.wmu.Lock()
		if st := c.streams[id]; st != nil {
			c.dropLocked(st, errResetByClient)
		}
		c.unlock()
	case *http2.PriorityFrame:
		if f.StreamDep == id {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
	case *http2.PushPromiseFrame:
		return protocolError() // a client cannot push (RFC 9113 8.4)
	case *http2.GoAwayFrame:
		(&Conn{c}).GoAway() // the client takes no more answers to new streams; those open finish

	}
	return nil
}

func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		c.settingsAcked = true
		return nil
	}
	c.wmu.Lock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.peerWindow
			c.peerWindow = int64(s.Val)
			for _, st := range c.streams {
				if st.send += delta; st.send > maxWindow {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
		case http2.SettingMaxFrameSize:
			c.peerFrame = s.Val
		case http2.SettingHeaderTableSize:
			c.henc.SetMaxDynamicTableSizeLimit(s.Val)
		}
		return nil
	})
	if err == nil && !c.settingsAckQueued {
		// One ACK answers every SETTINGS still unanswered in the queue: a
		// client that floods them without reading holds no queue that grows.
		c.wfr.WriteSettingsAck()
		c.settingsAckQueued = true
	}
	c.flow.Broadcast()
	c.unlock()
	return err
}

const maxWindow = 1<<31 - 1

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	id := f.StreamID
	if id > c.maxSeen {
		return protocolError() // RFC 9113 5.1: idle
	}
	c.wmu.Lock()
	defer c.unlock()
	if id == 0 {
		if c.sendConn += int64(f.Increment); c.sendConn > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
	} else if st := c.streams[id]; st != nil {
		if st.send += int64(f.Increment); st.send > maxWindow {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
		}
	}
	c.flow.Broadcast()
	return nil
}

var (
	errResetByClient = errors.New("h2server: stream reset by the client")
	errReset         = errors.New("h2server: stream reset")
)

// reset resets stream id with code.
func (c *conn) reset(id uint32, code http2.ErrCode) {
	c.wmu.Lock()
	if st := c.streams[id]; st != nil {
		c.dropLocked(st, errReset)
	}
	c.wfr.WriteRSTStream(id, code)
	c.unlock()
}

// dropLocked ends st for its handler (its writes and body reads fail with
// err) and forgets it; the caller holds wmu.
func (c *conn) dropLocked(st *Stream, err error) {
	st.gone = true
	st.endContext()
	c.returnConnWindow(st.body.fail(err) + st.unreturned)
	delete(c.streams, st.id)
	c.flow.Broadcast()
}

func (c *conn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	if id > c.maxSeen {
		return protocolError() // RFC 9113 5.1: idle
	}
	n := int64(f.Length)
	c.wmu.Lock()
	if n > c.recvConn {
		c.wmu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl) // more than the connection's window
	}
	c.recvConn -= n
	st := c.streams[id]
	open := st != nil && !st.remoteEnded
	switch {
	case !open:
		c.returnConnWindow(n) // the connection's window counts it all the same
	case n > st.recv:
		c.returnConnWindow(n)
		c.unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	default:
		st.recv -= n
		if f.StreamEnded() {
			st.remoteEnded = true
		}
		// Padding is given back at once, the data once the handler reads it.
		if pad := n - int64(len(f.Data())); pad > 0 {
			c.returnWindow(st, pad)
		}
	}
	c.unlock()
	if !open {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	st.received += int64(len(f.Data()))
	if st.declared >= 0 && (st.received > st.declared || f.StreamEnded() && st.received != st.declared) {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol} // RFC 9113 8.1.1
	}
	st.body.put(f.Data(), f.StreamEnded())
	return nil
}

// windowUpdateBytes is how much of a window is given back at once: not a
// WINDOW_UPDATE per read.
const windowUpdateBytes = 16 << 10

// returnWindow gives back n bytes of st's window and the connection's, once
// enough gathered; the caller holds wmu.
func (c *conn) returnWindow(st *Stream, n int64) {
	st.unreturned += n
	if st.unreturned < windowUpdateBytes && st.recv > 0 {
		return
	}
	c.returnConnWindow(st.unreturned)
	if !st.remoteEnded {
		c.wfr.WriteWindowUpdate(st.id, uint32(st.unreturned))
		st.recv += st.unreturned
	}
	st.unreturned = 0
}

// returnConnWindow gives back n bytes of the connection's window; the
// caller holds wmu.
func (c *conn) returnConnWindow(n int64) {
	if n > 0 {
		c.wfr.WriteWindowUpdate(0, uint32(n))
		c.recvConn += n
	}
}

func (c *conn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 != 1 {
		return protocolError()
	}
	if f.HasPriority() && f.Priority.StreamDep == id {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	c.wmu.Lock()
	st := c.streams[id]
	c.wmu.Unlock()
	if st != nil {
		return c.onTrailers(st, f)
	}
	if id <= c.maxSeen {
		return protocolError()
	}
	c.wmu.Lock()
	c.maxSeen = id
	goingAway := c.goingAway
	c.wmu.Unlock()
	if goingAway {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	if f.Truncated {
		return c.refuse(id, 431)
	}
	var method, path, authority, scheme string
	for _, hf := range f.PseudoFields() {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":path":
			path = hf.Value
		case ":authority":
			authority = hf.Value
		case ":scheme":
			scheme = hf.Value
		}
	}
	fields := f.RegularFields()
	var host string
	hosts, cookies, cl := 0, 0, int64(-1)
	for _, hf := range fields {
		switch hf.Name {
		case "host":
			host = hf.Value
			hosts++
		case "cookie":
			cookies++
		case "content-length":
			n, err := strconv.ParseInt(hf.Value, 10, 64)
			if err != nil || n < 0 || cl >= 0 && n != cl {
				return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
			}
			cl = n
		}
	}
	if cookies > 1 {
		fields = joinCookies(fields) // one line toward an HTTP/1.1 target (RFC 9113 8.2.3)
	}
	if method == "CONNECT" { // RFC 9113 8.5: only :authority; the handler refuses it
		if authority == "" || scheme != "" || path != "" {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
	} else if method == "" || scheme == "" || path == "" {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol} // RFC 9113 8.3.1
	}
	if hosts > 1 || hosts == 1 && authority != "" && host != authority {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol} // RFC 9113 8.3.1: they must agree
	} else if authority == "" {
		authority = host
	}
	c.wmu.Lock()
	active := len(c.streams)
	c.wmu.Unlock()
	if active >= int(c.maxStreams) {
		code := http2.ErrCodeProtocol
		if !c.settingsAcked {
			code = http2.ErrCodeRefusedStream // the client may not know the limit yet
		}
		return http2.StreamError{StreamID: id, Code: code}
	}
	st = &Stream{c: c, id: id, declared: cl}
	st.fields = st.fieldSpace[:0]
	st.Request = Request{Method: method, Path: path, Authority: authority, Scheme: scheme, Fields: fields,
		ContentLength: cl, Body: &st.body, TLS: c.tls}
	st.body.st = st
	st.body.cond.L = &st.body.mu
	if f.StreamEnded() {
		if cl > 0 {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		st.Request.ContentLength = 0
		st.body.done = true
		st.remoteEnded = true
	}
	c.wmu.Lock()
	st.send, st.recv = c.peerWindow, streamWindow
	c.streams[id] = st
	c.wmu.Unlock()
	startStream(st)
	return nil
}

// onTrailers takes a second header block on an open stream: the request's
// trailers, which end it (RFC 9113 8.1).
func (c *conn) onTrailers(st *Stream, f *http2.MetaHeadersFrame) error {
	c.wmu.Lock()
	ended := st.remoteEnded
	c.wmu.Unlock()
	switch {
	case ended:
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeStreamClosed}
	case !f.StreamEnded(), len(f.PseudoFields()) > 0:
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
	case st.declared >= 0 && st.received != st.declared:
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
	}
	c.wmu.Lock()
	st.remoteEnded = true
	c.wmu.Unlock()
	st.body.endWithTrailers(f.RegularFields())
	return nil
}

// joinCookies returns fields with its cookie fields joined into one, where
// the first was.
func joinCookies(fields []hpack.HeaderField) []hpack.HeaderField {
	out := make([]hpack.HeaderField, 0, len(fields))
	first := -1
	for _, hf := range fields {
		switch {
		case hf.Name != "cookie":
			out = append(out, hf)
		case first < 0:
			first = len(out)
			out = append(out, hf)
		default:
			out[first].Value += "; " + hf.Value
		}
	}
	return out
}

// refuse answers a request with status and no body, without a handler.
func (c *conn) refuse(id uint32, status int) error {
	c.wmu.Lock()
	c.writeHeaderBlock(id, statusValue(status), nil, true)
	c.unlock()
	return nil
}

// Request is what a client asked on a stream.
type Request struct {
	// Method, Path, Authority and Scheme are the pseudo-header fields as
	// the client sent them; Authority is the Host field when there was no
	// :authority (the two must agree when both came).
	Method, Path, Authority, Scheme string
	// Fields are the regular header fields in the order they came, their
	// names in lower case (HTTP/2 has no others); several Cookie fields
	// are one, joined with "; ".
	Fields []hpack.HeaderField
	// ContentLength is the body's declared length: -1 when none was
	// declared, 0 when the HEADERS frame ended the stream.
	ContentLength int64
	// Body is the request body; it reads io.EOF at its end, after which
	// Stream.Trailers has the request's trailers.
	Body io.ReadCloser
	// TLS is the connection's TLS state, nil on h2c.
	TLS *tls.ConnectionState
}

// Field returns the value of the first field called name (lower case).
func (r *Request) Field(name string) (string, bool) {
	for i := range r.Fields {
		if r.Fields[i].Name == name {
			return r.Fields[i].Value, true
		}
	}
	return "", false
}

// Stream is one request and its answer. The handler reads Request and
// answers with AddField, WriteHeader, Write and AddTrailer; the answer ends
// when the handler returns.
type Stream struct {
	Request Request
	c       *conn
	id      uint32
	// ctx is the stream's context, made on first use (Context); cancel
	// ends it (both guarded by c.wmu).
	ctx    context.Context
	cancel context.CancelFunc
	send   int64 // guarded by c.wmu
	gone   bool  // guarded by c.wmu
	// fields and trailer are the answer's, the handler's alone; fields
	// starts in fieldSpace, which holds a usual answer's.
	fields, trailer []hpack.HeaderField
	fieldSpace      [8]hpack.HeaderField
	wrote           bool
	ended           bool
	body            requestBody
	// writeDeadline bounds a Write's waits (guarded by c.wmu).
	writeDeadline time.Time
	// recv is what the client may still send on the stream, unreturned
	// what was read and not yet given back (both guarded by c.wmu).
	recv, unreturned int64
	// remoteEnded: the client ended its side (guarded by c.wmu).
	remoteEnded bool
	// declared is the request's Content-Length (-1: none), received what
	// its DATA frames carried so far; both the reading goroutine's.
	declared, received int64
}

func (st *Stream) serve() {
	defer st.finish()
	defer func() {
		if v := recover(); v != nil {
			st.c.reset(st.id, http2.ErrCodeInternal)
			st.ended = true
		}
	}()
	st.c.srv.Handler.ServeStream(st)
}

func (st *Stream) finish() {
	c := st.c
	if !st.ended {
		if !st.wrote {
			st.writeHeader(200, true)
		} else {
			c.wmu.Lock()
			if !st.gone && c.werr == nil {
				if len(st.trailer) > 0 {
					c.writeHeaderBlock(st.id, "", st.trailer, true)
				} else {
					c.wfr.WriteData(st.id, true, nil)
				}
			}
			c.unlock()
		}
	}
	st.body.Close()
	c.wmu.Lock()
	st.endContext()
	if _, open := c.streams[st.id]; open && !st.remoteEnded && !st.gone {
		c.wfr.WriteRSTStream(st.id, http2.ErrCodeNo) // the answer is complete: the rest of the body is not wanted (RFC 9113 8.1)
	}
	delete(c.streams, st.id)
	last := len(c.streams) == 0
	if last {
		c.idleSince = time.Now()
	}
	closeNow := last && c.goingAway
	c.unlock()
	if closeNow {
		c.closeAfterFlush()
	}
}

// Context is the stream's context: it ends when the stream is reset, its
// connection fails, or its handler returns. Made on first use: most
// handlers need none.
func (st *Stream) Context() context.Context {
	c := st.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if st.ctx == nil {
		st.ctx, st.cancel = context.WithCancel(c.ctx)
		if st.gone || c.werr != nil {
			st.cancel()
		}
	}
	return st.ctx
}

// endContext ends the stream's context, if it has one; the caller holds
// c.wmu.
func (st *Stream) endContext() {
	if st.cancel != nil {
		st.cancel()
	}
}

// Gone reports whether the client can no longer get the answer: the stream
// was reset or its connection failed.
func (st *Stream) Gone() bool {
	c := st.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return st.gone || c.werr != nil
}

// Trailers are the request's trailer fields, once Body read io.EOF.
func (st *Stream) Trailers() []hpack.HeaderField {
	st.body.mu.Lock()
	defer st.body.mu.Unlock()
	return st.body.trailers
}

// AddField adds a field to the answer's header, before WriteHeader. A name
// in upper case is sent in lower case, as HTTP/2 requires.
func (st *Stream) AddField(name, value string) {
	st.fields = append(st.fields, hpack.HeaderField{Name: lower(name), Value: value})
}

// AddTrailer adds a field to the answer's trailers, sent when the handler
// returns.
func (st *Stream) AddTrailer(name, value string) {
	st.trailer = append(st.trailer, hpack.HeaderField{Name: lower(name), Value: value})
}

// WriteHeader sends the answer's header with status code; only the first
// call does.
func (st *Stream) WriteHeader(code int) {
	if !st.wrote {
		st.writeHeader(code, false)
	}
}

func (st *Stream) writeHeader(code int, end bool) {
	st.wrote = true
	st.ended = end
	c := st.c
	c.wmu.Lock()
	if !st.gone && c.werr == nil {
		c.writeHeaderBlock(st.id, statusValue(code), st.fields, end)
	}
	c.unlock()
}

// statusValue is code as the :status field's value; the common ones without
// an allocation.
func statusValue(code int) string {
	switch code {
	case 200:
		return "200"
	case 204:
		return "204"
	case 301:
		return "301"
	case 302:
		return "302"
	case 304:
		return "304"
	case 400:
		return "400"
	case 404:
		return "404"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	case 504:
		return "504"
	}
	return strconv.Itoa(code)
}

// writeHeaderBlock encodes a :status of status (none for trailers: "") and
// fields, and writes them as HEADERS (and CONTINUATION) frames; the caller
// holds wmu.
func (c *conn) writeHeaderBlock(id uint32, status string, fields []hpack.HeaderField, end bool) {
	c.hw.b = c.hw.b[:0]
	if status != "" {
		c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: status})
	}
	for _, f := range fields {
		c.henc.WriteField(f)
	}
	block := c.hw.b
	first := true
	for len(block) > 0 || first {
		n := min(len(block), int(c.peerFrame))
		frag := block[:n]
		block = block[n:]
		if first {
			c.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: end, EndHeaders: len(block) == 0})
			first = false
		} else {
			c.wfr.WriteContinuation(id, len(block) == 0, frag)
		}
	}
}

// Write sends p as the answer's body (after a 200 header when none was
// written), as the client's windows let it: it waits for them, up to the
// write deadline.
func (st *Stream) Write(p []byte) (int, error) {
	if !st.wrote {
		st.WriteHeader(200)
	}
	c := st.c
	written := 0
	c.wmu.Lock()
	defer c.unlock()
	for len(p) > 0 {
		if !st.gone && c.werr == nil && (st.send <= 0 || c.sendConn <= 0 || len(c.out.b) > maxQueued) {
			stop := wakeAt(st.writeDeadline, &c.wmu, c.flow)
			for !st.gone && c.werr == nil && (st.send <= 0 || c.sendConn <= 0 || len(c.out.b) > maxQueued) {
				if !st.writeDeadline.IsZero() && !time.Now().Before(st.writeDeadline) {
					stop()
					c.dropLocked(st, os.ErrDeadlineExceeded)
					c.wfr.WriteRSTStream(st.id, http2.ErrCodeInternal)
					return written, os.ErrDeadlineExceeded
				}
				c.wakeWriter() // what went before goes out while this waits
				c.flow.Wait()
			}
			stop()
		}
		if st.gone {
			return written, errors.New("h2server: stream reset")
		}
		if c.werr != nil {
			return written, c.werr
		}
		n := int64(len(p))
		n = min(n, st.send, c.sendConn, int64(c.peerFrame))
		if err := c.wfr.WriteData(st.id, false, p[:n]); err != nil {
			c.werr = err
			return written, err
		}
		st.send -= n
		c.sendConn -= n
		written += int(n)
		p = p[n:]
	}
	return written, nil
}

// SetWriteDeadline bounds how long a Write may wait for the client's
// window or a slow client's queue: past it the stream is reset.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	st.c.wmu.Lock()
	st.writeDeadline = t
	st.c.wmu.Unlock()
	return nil
}

// SetReadDeadline bounds how long a read of the request body waits.
func (st *Stream) SetReadDeadline(t time.Time) error {
	st.body.mu.Lock()
	st.body.deadline = t
	st.body.cond.Broadcast()
	st.body.mu.Unlock()
	return nil
}

// wakeAt wakes the waiters of cond (whose lock is l) at t, for a wait
// bounded by a deadline; the returned func stops it.
func wakeAt(t time.Time, l sync.Locker, cond *sync.Cond) func() bool {
	if t.IsZero() {
		return func() bool { return false }
	}
	return time.AfterFunc(time.Until(t), func() { l.Lock(); cond.Broadcast(); l.Unlock() }).Stop
}

func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// requestBody is a stream's request body, filled by the reading goroutine.
type requestBody struct {
	st *Stream
	// trailers are the request's, set when its trailers end it.
	trailers []hpack.HeaderField
	mu       sync.Mutex
	cond     sync.Cond
	buf      []byte
	done     bool
	err      error
	deadline time.Time
}

var errBodyClosed = errors.New("h2server: request body closed")

// Close ends the body for its readers: a request forwarded while the
// client still sends must not keep a reader waiting once the answer is done.
func (b *requestBody) Close() error {
	if unread := b.fail(errBodyClosed); unread > 0 {
		c := b.st.c
		c.wmu.Lock()
		c.returnConnWindow(unread)
		c.unlock()
	}
	return nil
}

// put adds what a DATA frame carried; its window comes back as it is read.
func (b *requestBody) put(p []byte, end bool) {
	b.mu.Lock()
	var dropped int64
	if b.err == nil {
		b.buf = append(b.buf, p...)
	} else {
		dropped = int64(len(p)) // nobody reads it any more: given back below
	}
	b.done = b.done || end
	b.cond.Broadcast()
	b.mu.Unlock()
	if dropped > 0 {
		c := b.st.c
		c.wmu.Lock()
		c.returnConnWindow(dropped)
		c.unlock()
	}
}

func (b *requestBody) endWithTrailers(fields []hpack.HeaderField) {
	b.mu.Lock()
	b.trailers = fields
	b.done = true
	b.cond.Broadcast()
	b.mu.Unlock()
}

// fail ends the body for its readers with err and returns how many bytes
// were left unread, whose window the caller gives back.
func (b *requestBody) fail(err error) int64 {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	unread := int64(len(b.buf))
	b.buf = nil
	b.cond.Broadcast()
	b.mu.Unlock()
	return unread
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.read(p)
	if n > 0 {
		c := b.st.c
		c.wmu.Lock()
		c.returnWindow(b.st, int64(n))
		c.unlock()
	}
	return n, err
}

// read is Read under the body's lock, which is never held while wmu is
// taken (wmu is taken first elsewhere: dropLocked).
func (b *requestBody) read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) == 0 && !b.done && b.err == nil {
		stop := wakeAt(b.deadline, &b.mu, &b.cond)
		for len(b.buf) == 0 && !b.done && b.err == nil {
			if !b.deadline.IsZero() && !time.Now().Before(b.deadline) {
				stop()
				return 0, os.ErrDeadlineExceeded
			}
			b.cond.Wait()
		}
		stop()
	}
	if len(b.buf) > 0 {
		n := copy(p, b.buf)
		b.buf = b.buf[n:]
		return n, nil
	}
	if b.done {
		return 0, io.EOF
	}
	return 0, b.err
}
