package balancer

import "sync/atomic"

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
