package balancer

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-lb/berth/balancer/pool"
	"github.com/berth-lb/berth/balancer/stats"
)

// blackHole returns an address on ip whose SYNs the kernel drops, as a host
// that is cut off: a listener with an accept queue of one, filled by a
// connection nobody accepts.
func blackHole(t *testing.T, ip string) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: netip.MustParseAddr(ip).As4()}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(sa.(*unix.SockaddrInet4).Port))
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return addr // the queue is full: SYNs are dropped from now on
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatalf("the accept queue of %s never filled", addr)
	return ""
}

// A connect to a host whose SYNs vanish is given up after the host's usual
// connect time (at least pool.ConnectFloor) when another target could take the
// request, and after the whole connect timeout when none could.
func TestSlowConnectIsGivenUpAfterTheHostsUsualTime(t *testing.T) {
	alive, err := net.Listen("tcp", "127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Close()
	hole := blackHole(t, "127.0.0.3")
	host := &pool.Host{}
	live := &pool.Target{Address: alive.Addr().String(), Host: host}
	for range 5 {
		uc, err := pool.Dial(live, 10*time.Second, true)
		if err != nil {
			t.Fatal(err)
		}
		uc.Discard()
	}
	lost := &pool.Target{Address: hole, Host: host}
	for _, tc := range []struct {
		alternatives bool
		timeout      time.Duration
		least, most  time.Duration
	}{
		{true, 10 * time.Second, pool.ConnectFloor, 4 * pool.ConnectFloor},
		{false, 1500 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second},
	} {
		start := time.Now()
		_, err := pool.Dial(lost, tc.timeout, tc.alternatives)
		took := time.Since(start)
		if err == nil || pool.DialFailure(err) != stats.ReasonConnectTimeout {
			t.Fatalf("alternatives %v: connect to a black hole: %v, want a connect timeout", tc.alternatives, err)
		}
		if took < tc.least || took > tc.most {
			t.Errorf("alternatives %v: the connect was given up after %v, want %v to %v (connect timeout %v)",
				tc.alternatives, took, tc.least, tc.most, tc.timeout)
		}
	}
}

// With the default connect timeout (10 s), a request that meets a target whose
// host is gone goes to another target within about a second, and the lost
// host is avoided from then on.
func TestRequestsPassALostHostQuickly(t *testing.T) {
	be := backend(t, "alive", nil)
	cfg := webConfig(serving("lost", blackHole(t, "127.0.0.2")), serving("alive", addrOf(be)))
	cfg.Groups[0].ConnectTimeout = 0
	lb := start(t, cfg)
	url := "http://" + lb.Addr("web") + "/"
	for i := range 6 {
		start := time.Now()
		code, body, _ := get(t, http.DefaultClient, url)
		if took := time.Since(start); code != 200 || body != "alive" || took > 2*pool.ConnectInitial {
			t.Fatalf("request %d: %d %q after %v, want 200 from the live target within %v", i, code, body, took, 2*pool.ConnectInitial)
		}
	}
	for _, st := range lb.Targets() {
		if st.ID == "lost" && (!st.Ejected || st.Requests != 0) {
			t.Fatalf("the given-up connect did not eject its target, or counted a request: %+v", st)
		}
	}
}

// A suspect target gets no request while another serves, and still serves
// when it is all there is.
func TestSuspectTargetsAreAvoided(t *testing.T) {
	a, b := backend(t, "a", nil), backend(t, "b", nil)
	suspectA := serving("a", addrOf(a))
	suspectA.Suspect = true
	lb := start(t, webConfig(suspectA, serving("b", addrOf(b))))
	url := "http://" + lb.Addr("web") + "/"
	for range 10 {
		if code, body, _ := get(t, http.DefaultClient, url); code != 200 || body != "b" {
			t.Fatalf("with a suspect: got %d %q, want b's answer", code, body)
		}
	}
	if err := lb.Apply(webConfig(suspectA)); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := get(t, http.DefaultClient, url); code != 200 || body != "a" {
		t.Fatalf("only a suspect target: got %d %q, want its answer", code, body)
	}
	if err := lb.Apply(webConfig(serving("a", addrOf(a)), serving("b", addrOf(b)))); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for range 4 {
		_, body, _ := get(t, http.DefaultClient, url)
		seen[body]++
	}
	if seen["a"] == 0 || seen["b"] == 0 {
		t.Fatalf("no longer suspect: answers %v, want both", seen)
	}
}

// A GET that waits for an answer from a target whose host becomes suspect is
// taken off that connection and answered by another target at once.
func TestAwaitedRequestLeavesASuspectHost(t *testing.T) {
	for _, client := range []struct {
		name string
		c    *http.Client
	}{{"HTTP/1.1", http.DefaultClient}, {"HTTP/2 downgraded to HTTP/1.1", h2cClient()}} {
		t.Run(client.name, func(t *testing.T) { awaitedRequestLeavesASuspectHost(t, client.c) })
	}
}

func awaitedRequestLeavesASuspectHost(t *testing.T, client *http.Client) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	hung := backend(t, "", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	well := backend(t, "well", nil)
	lb := start(t, webConfig(serving("hung", addrOf(hung)), serving("well", addrOf(well))))
	type answer struct {
		code int
		body string
	}
	got := make(chan answer, 1)
	send := func() {
		go func() {
			code, body, _ := get(t, client, "http://"+lb.Addr("web")+"/")
			got <- answer{code, body}
		}()
	}
	send()
	for waiting := false; !waiting; {
		select {
		case <-entered:
			waiting = true
		case <-got: // the other target answered: the next request goes to the hung one
			send()
		}
	}
	suspect := serving("hung", addrOf(hung))
	suspect.Suspect = true
	if err := lb.Apply(webConfig(suspect, serving("well", addrOf(well)))); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-got:
		if a.code != 200 || a.body != "well" {
			t.Fatalf("got %d %q, want the other target's answer", a.code, a.body)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the request still waits on the suspect host")
	}
}
