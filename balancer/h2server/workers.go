package h2server

import (
	"sync"
	"time"
)

// Streams are served by reused goroutines. A fresh goroutine starts with
// the runtime's smallest stack and grows it twice inside a proxying
// handler, copying a dozen frames each time; at exit a grown stack is
// freed. A worker keeps its grown stack from one stream to the next, and
// handing a stream to a parked worker costs a wake-up, no more than
// starting a goroutine does.
//
// Idle workers are kept as a stack, the most recently idle on top. What a
// burst of streams left behind is released as it stays unused: while any
// worker is idle, a sweep runs every workerSweepEvery and ends the workers
// that were idle the whole period since the last one (the bottom lowWater
// of the stack).

// maxIdleWorkers bounds the parked workers, whatever the bursts: about
// 8 KiB of stack each.
const maxIdleWorkers = 1024

// workerSweepEvery is how often the workers idle since the last sweep end.
const workerSweepEvery = 10 * time.Second

type worker struct{ next chan *Stream }

var workers struct {
	mu   sync.Mutex
	idle []*worker
	// lowWater is the fewest idle workers since the last sweep: the
	// bottom lowWater of idle took no stream since then.
	lowWater int
	// sweeping: a sweep is due (its timer runs).
	sweeping bool
	// started counts the workers started, for the tests.
	started int
}

// startStream serves st on an idle worker, or on a new one.
func startStream(st *Stream) {
	workers.mu.Lock()
	if n := len(workers.idle); n > 0 {
		w := workers.idle[n-1]
		workers.idle[n-1] = nil
		workers.idle = workers.idle[:n-1]
		workers.lowWater = min(workers.lowWater, n-1)
		workers.mu.Unlock()
		w.next <- st
		return
	}
	workers.lowWater = 0
	workers.started++
	workers.mu.Unlock()
	go work(st)
}

// work serves st, then the streams it is handed while it is kept.
func work(st *Stream) {
	w := &worker{next: make(chan *Stream, 1)}
	for st != nil {
		st.serve()
		if !park(w) {
			return
		}
		st = <-w.next
	}
}

// park puts w on the idle stack; false when w is not kept (the stack is
// full).
func park(w *worker) bool {
	workers.mu.Lock()
	defer workers.mu.Unlock()
	if len(workers.idle) >= maxIdleWorkers {
		return false
	}
	workers.idle = append(workers.idle, w)
	if !workers.sweeping {
		workers.sweeping, workers.lowWater = true, len(workers.idle)
		time.AfterFunc(workerSweepEvery, sweepWorkers)
	}
	return true
}

// sweepWorkers ends the workers idle since the last sweep, and comes again
// while some are idle.
func sweepWorkers() {
	workers.mu.Lock()
	defer workers.mu.Unlock()
	for _, w := range workers.idle[:workers.lowWater] {
		w.next <- nil
	}
	kept := copy(workers.idle, workers.idle[workers.lowWater:])
	clear(workers.idle[kept:])
	workers.idle = workers.idle[:kept]
	workers.lowWater = kept
	if workers.sweeping = kept > 0; workers.sweeping {
		time.AfterFunc(workerSweepEvery, sweepWorkers)
	}
}

// workerCounts are how many workers are parked and how many were started,
// for the tests.
func workerCounts() (idle, started int) {
	workers.mu.Lock()
	defer workers.mu.Unlock()
	return len(workers.idle), workers.started
}
