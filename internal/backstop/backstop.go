// Package backstop keeps a panic in the goroutine of one client connection,
// flow or health check from ending the process: the goroutine defers Recover
// first, and a panic that reaches it is logged with its stack, counted, and
// ends that goroutine's work only. It is a backstop, not error handling:
// every panic it reports is a bug to fix.
package backstop

import (
	"io"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// stackEvery bounds how often a stack is logged: a request that panics can
// be sent ten thousand times a second, and its stacks must not flood the
// log. Every panic is still logged (without its stack in between) and counted.
const stackEvery = time.Second

// lastStack is when a stack was last logged, in unix nanoseconds.
var lastStack atomic.Int64

// Recover, deferred at the top of a goroutine, stops a panic of that
// goroutine: it closes c (when not nil) so the client sees its connection
// end, adds one to panics and logs the panic at error level with key=name
// (listener=web, target=...) and the stack. It does nothing when the
// goroutine did not panic.
func Recover(log *slog.Logger, panics *atomic.Uint64, c io.Closer, key, name string) {
	v := recover()
	if v == nil {
		return
	}
	if c != nil {
		c.Close()
	}
	Report(log, panics, v, key, name)
}

// Report counts and logs a panic value already recovered (for a caller that
// must recover itself to re-panic, as an HTTP/2 handler does).
func Report(log *slog.Logger, panics *atomic.Uint64, v any, key, name string) {
	panics.Add(1)
	now := time.Now().UnixNano()
	last := lastStack.Load()
	if now-last < int64(stackEvery) || !lastStack.CompareAndSwap(last, now) {
		log.Error("backstop: recovered a panic; only its connection, flow or check ended (one stack a second is logged)", key, name, "panic", v)
		return
	}
	log.Error("backstop: recovered a panic; only its connection, flow or check ended", key, name, "panic", v, "stack", string(debug.Stack()))
}
