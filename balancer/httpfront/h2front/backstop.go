package h2front

import (
	"net/http"

	"github.com/berth-lb/berth/internal/backstop"
)

// streamBackstop is the handler of HTTP/2 streams. The HTTP/2 server recovers
// a panic of a stream's handler itself and resets that stream; this logs and
// counts it as the other backstops do. http.ErrAbortHandler is berth's own
// way to reset a stream: it passes, uncounted.
type streamBackstop struct{ l Listener }

func (s streamBackstop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer s.recoverStream()
	growStack(int(r.ProtoMajor))
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

// streamStackBytes is about the stack a stream's handler goes down to when it
// proxies over HTTP/1.1 (the frames of h2request.go and h2http1.go, the
// server's and the network poller's under them).
const streamStackBytes = 6 << 10

// growStack makes the stack of a new stream goroutine big enough for the
// whole handler at once. The server starts every handler on a fresh goroutine,
// whose stack starts small (the runtime's average of mostly idle goroutines)
// and otherwise doubles twice deep inside the handler, each time copying
// a dozen frames: that was 30 % of a proxied stream's instructions. Grown
// here, the copy is of two frames.
//
//go:noinline
func growStack(i int) byte {
	var pad [streamStackBytes]byte
	pad[i%len(pad)] = 1 // indexed at run time, so the frame stays
	return pad[(i+1)%len(pad)]
}
