// Package idlepark holds idle client connections without a goroutine each.
//
// A goroutine that waits for a connection's next request holds its stack and
// its g: a stack that grew during a request (8 KiB on berth's HTTP/1.1 path)
// shrinks at a garbage collection to no less than 4 KiB, so 10,000 idle
// keep-alive clients cost 40 to 80 MiB of stacks alone. Parked, a connection
// is one entry in an epoll set (EPOLLONESHOT) and in a heap of deadlines, and
// a single goroutine waits on that set through Go's own poller (the set's
// descriptor is in the runtime's epoll set: no thread blocks). When the
// socket turns readable, its deadline passes or it is woken, the connection
// is taken out of the set and its resume function runs on a new goroutine.
//
// The package knows sockets and deadlines, not protocols: the caller parks
// only what can wait in the kernel alone (nothing buffered in user space
// that the socket's readability would not announce).
package idlepark

import (
	"container/heap"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-lb/berth/internal/backstop"
)

// Spot is where a parked connection is found, kept in the connection's own
// state: Wake takes it. Its zero value is not parked. Its field is guarded
// by the parker's lock.
type Spot struct {
	slot int32 // the slot's index + 1 while parked
}

// parked is one parked connection.
type parked struct {
	rc     syscall.RawConn
	resume func(readable bool)
	spot   *Spot
	// deadline is when the connection is resumed anyway (not readable), in
	// nanoseconds since epoch; at is its index in the heap.
	deadline int64
	at       int32
	// gen tells this slot's parked connection from an earlier one's: an
	// event fetched before a slot was freed and reused must not resume the
	// new connection.
	gen uint32
}

type parker struct {
	mu sync.Mutex
	// file is the epoll set epfd, in Go's poller; wait waits on it. Never
	// closed (os.File.Fd would take it out of the poller: epfd is kept).
	epfd  int
	file  *os.File
	wait  syscall.RawConn
	slots []parked
	free  []int32
	// due holds the indices of the used slots, by deadline (a heap).
	due []int32
}

// epoch makes deadlines monotonic nanoseconds.
var epoch = time.Now()

var (
	the      parker
	initOnce sync.Once
	initErr  error
)

// Park waits for the socket of rc to turn readable, for at most deadline,
// without a goroutine; resume then runs on a new goroutine, told whether the
// socket is readable (false: the deadline passed, or Wake was called, or
// the socket was closed under it). Once Park returns nil, the caller must
// leave the connection to resume. On an error nothing was parked.
func Park(s *Spot, rc syscall.RawConn, deadline time.Time, resume func(readable bool)) error {
	initOnce.Do(func() { initErr = the.start() })
	if initErr != nil {
		return initErr
	}
	return the.park(s, rc, int64(deadline.Sub(epoch)), resume)
}

// Wake resumes the connection parked at s now, as not readable; it does
// nothing when none is parked there.
func Wake(s *Spot) {
	p := &the
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.slot != 0 {
		p.unpark(s.slot-1, false)
	}
}

func (p *parker) start() error {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("idlepark: epoll set: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return fmt.Errorf("idlepark: epoll set: %w", err)
	}
	p.epfd, p.file = fd, os.NewFile(uintptr(fd), "idlepark")
	if p.wait, err = p.file.SyscallConn(); err == nil {
		// A deadline can be set only on a descriptor in Go's poller: the
		// proof that waiting on it takes no thread.
		err = p.file.SetReadDeadline(time.Time{})
	}
	if err != nil {
		p.file.Close()
		return fmt.Errorf("idlepark: epoll set: %w", err)
	}
	go p.run()
	return nil
}

func (p *parker) park(s *Spot, rc syscall.RawConn, deadline int64, resume func(bool)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var i int32
	if n := len(p.free); n > 0 {
		i, p.free = p.free[n-1], p.free[:n-1]
	} else {
		i = int32(len(p.slots))
		p.slots = append(p.slots, parked{})
	}
	sl := &p.slots[i]
	sl.gen++
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: i, Pad: int32(sl.gen)}
	var ctlErr error
	// Control holds the descriptor open: it cannot be closed, and its number
	// reused by another socket, while the set takes it.
	err := rc.Control(func(fd uintptr) { ctlErr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev) })
	if err == nil {
		err = ctlErr
	}
	if err != nil {
		p.free = append(p.free, i)
		return fmt.Errorf("idlepark: park: %w", err)
	}
	sl.rc, sl.resume, sl.spot, sl.deadline = rc, resume, s, deadline
	s.slot = i + 1
	heap.Push((*byDeadline)(p), i)
	if p.due[0] == i {
		p.file.SetReadDeadline(epoch.Add(time.Duration(deadline)))
	}
	return nil
}

// unpark takes slot i out of the set and resumes its connection. p.mu is held.
func (p *parker) unpark(i int32, readable bool) {
	sl := &p.slots[i]
	// A socket closed while parked left the set with its last descriptor;
	// Control then fails, and nothing else of the set is touched.
	sl.rc.Control(func(fd uintptr) { unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) })
	heap.Remove((*byDeadline)(p), int(sl.at))
	resume := sl.resume
	sl.spot.slot = 0
	sl.rc, sl.resume, sl.spot = nil, nil, nil
	p.free = append(p.free, i)
	go resume(readable)
}

// run resumes the parked connections that turn readable or are due, forever.
func (p *parker) run() {
	events := make([]unix.EpollEvent, 256)
	for {
		p.resumeReady(events)
	}
}

// loopPanics counts the panics of the parker's loop: each is a bug, but the
// process and the other parked connections go on.
var loopPanics atomic.Uint64

// Panics is how many panics the parker's loop recovered (berth_panics_total
// with component="idle_park").
func Panics() uint64 { return loopPanics.Load() }

// resumeReady waits once for readiness or the earliest deadline and resumes
// what is due.
func (p *parker) resumeReady(events []unix.EpollEvent) {
	defer backstop.Recover(slog.Default(), &loopPanics, nil, "component", "idle_park")
	n := 0
	err := p.wait.Read(func(fd uintptr) bool {
		n, _ = unix.EpollWait(int(fd), events, 0)
		return n > 0
	})
	p.mu.Lock()
	defer p.mu.Unlock() // before the backstop, should a bug panic below
	for _, ev := range events[:max(n, 0)] {
		if i := ev.Fd; i >= 0 && int(i) < len(p.slots) && p.slots[i].spot != nil && p.slots[i].gen == uint32(ev.Pad) {
			p.unpark(i, true)
		}
	}
	now := int64(time.Since(epoch))
	for len(p.due) > 0 && p.slots[p.due[0]].deadline <= now {
		p.unpark(p.due[0], false)
	}
	if err != nil {
		// The wait ended at its deadline: wait next for the earliest
		// one, or without one.
		next := time.Time{}
		if len(p.due) > 0 {
			next = epoch.Add(time.Duration(p.slots[p.due[0]].deadline))
		}
		p.file.SetReadDeadline(next)
	}
}

// byDeadline is the heap of parker.due.
type byDeadline parker

func (h *byDeadline) Len() int { return len(h.due) }
func (h *byDeadline) Less(i, j int) bool {
	return h.slots[h.due[i]].deadline < h.slots[h.due[j]].deadline
}
func (h *byDeadline) Swap(i, j int) {
	h.due[i], h.due[j] = h.due[j], h.due[i]
	h.slots[h.due[i]].at, h.slots[h.due[j]].at = int32(i), int32(j)
}
func (h *byDeadline) Push(x any) {
	i := x.(int32)
	h.slots[i].at = int32(len(h.due))
	h.due = append(h.due, i)
}
func (h *byDeadline) Pop() any {
	n := len(h.due) - 1
	i := h.due[n]
	h.due = h.due[:n]
	return i
}
