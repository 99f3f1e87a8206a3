package h2front

import (
	"net/http"

	"github.com/berth-lb/berth/internal/backstop"
)

// streamBackstop is the handler of HTTP/2 streams. x/net's server recovers
// a panic of a stream's handler itself and resets that stream; this logs and
// counts it as the other backstops do. http.ErrAbortHandler is berth's own
// way to reset a stream: it passes, uncounted.
type streamBackstop struct{ l Listener }

func (s streamBackstop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer s.recoverStream()
	s.l.Hook("stream")
	serveStream(s.l, w, r)
}

func (s streamBackstop) recoverStream() {
	v := recover()
	if v == nil {
		return
	}
	if v != http.ErrAbortHandler {
		reportPanic(s.l, v)
	}
	panic(http.ErrAbortHandler) // the server resets the stream, and logs nothing more
}

// reportPanic logs and counts a panic recovered in one of l's connections.
func reportPanic(l Listener, v any) {
	backstop.Report(l.Log(), l.Panics(), v, "listener", l.Name())
}
