package balancer

import (
	"net/http"
	"sync/atomic"

	"github.com/berth-lb/berth/internal/backstop"
)

// A panic in the goroutine of one client connection, UDP datagram or flow
// is recovered by backstop.Recover, deferred at its top: it is logged with
// its stack, counted (ListenerStats.Panics) and ends that connection only.

// testHook, set by tests only (nil in production), is called at the start
// of every client connection ("conn"), UDP datagram ("datagram") and HTTP/2
// stream ("stream"): a test panics in it to prove the backstop. Atomic, so a
// test that sets it races with no goroutine of an earlier one.
var testHook atomic.Pointer[func(l *listener, where string)]

func runTestHook(l *listener, where string) {
	if h := testHook.Load(); h != nil {
		(*h)(l, where)
	}
}

// streamBackstop is the handler of HTTP/2 streams. x/net's server recovers
// a panic of a stream's handler itself and resets that stream; this logs and
// counts it as the other backstops do. http.ErrAbortHandler is berth's own
// way to reset a stream: it passes, uncounted.
type streamBackstop struct{ l *listener }

func (s streamBackstop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer s.recoverStream()
	runTestHook(s.l, "stream")
	s.l.ServeHTTP(w, r)
}

func (s streamBackstop) recoverStream() {
	v := recover()
	if v == nil {
		return
	}
	if v != http.ErrAbortHandler {
		s.l.reportPanic(v)
	}
	panic(http.ErrAbortHandler) // the server resets the stream, and logs nothing more
}

// reportPanic logs and counts a panic recovered in one of l's connections.
func (l *listener) reportPanic(v any) {
	backstop.Report(l.b.log, &l.panics, v, "listener", l.name)
}
