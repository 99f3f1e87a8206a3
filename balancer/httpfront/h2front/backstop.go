package h2front

import (
	"net/http"

	"github.com/berth-lb/berth/balancer/h2server"
	"github.com/berth-lb/berth/internal/backstop"
)

// streamBackstop is the handler of one connection's HTTP/2 streams. The
// HTTP/2 server recovers a panic of a stream's handler itself and resets that
// stream; this logs and counts it as the other backstops do.
// http.ErrAbortHandler is berth's own way to reset a stream: it passes,
// uncounted.
type streamBackstop struct {
	l  Listener
	hc *H2Conn
}

func (b streamBackstop) ServeStream(s *h2server.Stream) {
	defer b.recoverStream()
	b.l.Hook("stream")
	serveStream(b.l, b.hc, s)
}

func (b streamBackstop) recoverStream() {
	v := recover()
	if v == nil {
		return
	}
	if v != http.ErrAbortHandler {
		reportPanic(b.l, v)
	}
	panic(http.ErrAbortHandler) // the server resets the stream, and logs nothing more
}

// reportPanic logs and counts a panic recovered in one of l's connections.
func reportPanic(l Listener, v any) {
	backstop.Report(l.Log(), l.Panics(), v, "listener", l.Name())
}
