package balancer

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berth-lb/berth/balancer/pool"
)

// shares picks n times from the group of lb's web listener and returns the
// fraction each target ID got.
func shares(lb *Balancer, n int) map[string]float64 {
	g := lb.listeners["web"].route.Load().Fallback.Group
	count := map[string]int{}
	for range n {
		count[g.Pick(nil, 0).ID]++
	}
	out := map[string]float64{}
	for id, c := range count {
		out[id] = float64(c) / float64(n)
	}
	return out
}

func TestSlowStartRampsANewTargetsShare(t *testing.T) {
	for _, algorithm := range []string{AlgorithmRoundRobin, AlgorithmWeightedRandom} {
		t.Run(algorithm, func(t *testing.T) {
			cfg := webConfig(serving("old", "127.0.0.1:1"))
			cfg.Groups[0].Algorithm = algorithm
			cfg.Groups[0].SlowStart = 100 * time.Second
			lb := start(t, cfg)
			cfg.Groups[0].Targets = append(cfg.Groups[0].Targets, serving("new", "127.0.0.1:2"))
			if err := lb.Apply(cfg); err != nil {
				t.Fatal(err)
			}
			fresh := lb.targets["new"]
			// The new target's share over windows of its ramp: weight w of a
			// full weight 1 gives w/(1+w) of the requests.
			previous := -1.0
			for _, elapsed := range []float64{0, 25, 50, 75, 100, 150} {
				fresh.ServingSince.Store(time.Now().Add(-time.Duration(elapsed * float64(time.Second))).UnixNano())
				got := shares(lb, 20000)["new"]
				w := min(elapsed/100, 1)
				want := w / (1 + w)
				if got < want-0.05 || got > want+0.05 {
					t.Errorf("%v s into a 100 s slow start: the new target got %.3f of the picks, want about %.3f", elapsed, got, want)
				}
				if got < previous-0.02 {
					t.Errorf("%v s into the slow start the share fell from %.3f to %.3f", elapsed, previous, got)
				}
				previous = got
			}
		})
	}
}

func TestPickWithSlowStartAndMitigationAllocatesNothing(t *testing.T) {
	cfg := webConfig(serving("a", "127.0.0.1:1"), serving("b", "127.0.0.1:2"), serving("c", "127.0.0.1:3"))
	cfg.Groups[0].Algorithm = AlgorithmWeightedRandom
	cfg.Groups[0].SlowStart = MinSlowStart
	cfg.Groups[0].AnomalyMitigation = true
	lb := start(t, cfg)
	lb.targets["c"].Passive.RaiseAnomaly()
	lb.targets["b"].ServingSince.Store(time.Now().UnixNano())
	g := lb.listeners["web"].route.Load().Fallback.Group
	if n := testing.AllocsPerRun(1000, func() { g.Pick(nil, 0) }); n != 0 {
		t.Errorf("a pick allocates %.1f times", n)
	}
}

func TestSlowStartThroughTheProxy(t *testing.T) {
	old := backend(t, "old", nil)
	fresh := backend(t, "new", nil)
	cfg := webConfig(serving("old", addrOf(old)))
	cfg.Groups[0].SlowStart = MinSlowStart
	lb := start(t, cfg)
	cfg.Groups[0].Targets = append(cfg.Groups[0].Targets, serving("new", addrOf(fresh)))
	if err := lb.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for range 200 {
		_, body, _ := get(t, http.DefaultClient, "http://"+lb.Addr("web")+"/")
		got[body]++
	}
	// Seconds into a 30 s ramp the new target has a few percent at most.
	if got["new"] > 30 || got["old"]+got["new"] != 200 {
		t.Errorf("right after joining with slow start: %v", got)
	}
}

func TestAnomalyMitigationShiftsWeightAndBack(t *testing.T) {
	cfg := webConfig(serving("a", "127.0.0.1:1"), serving("b", "127.0.0.1:2"), serving("c", "127.0.0.1:3"))
	cfg.Groups[0].Algorithm = AlgorithmWeightedRandom
	cfg.Groups[0].AnomalyMitigation = true
	lb := start(t, cfg)
	sick := lb.targets["c"]
	for range 5 {
		sick.Passive.RaiseAnomaly()
	}
	if got := shares(lb, 20000)["c"]; got > 0.1 {
		t.Errorf("a target with recent failures still gets %.3f of the picks", got)
	}
	for range pool.AnomalyMaxScore {
		sick.Passive.Succeeded()
	}
	if got := shares(lb, 20000)["c"]; got < 0.28 || got > 0.39 {
		t.Errorf("a recovered target gets %.3f of the picks, want about 1/3", got)
	}

	two := webConfig(serving("a", "127.0.0.1:1"), serving("c", "127.0.0.1:3"))
	two.Groups[0].Algorithm = AlgorithmWeightedRandom
	two.Groups[0].AnomalyMitigation = true
	if err := lb.Apply(two); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		lb.targets["c"].Passive.RaiseAnomaly()
	}
	if got := shares(lb, 20000)["c"]; got < 0.45 {
		t.Errorf("with two targets mitigation must not act, the failing one got %.3f", got)
	}
}

func TestRampConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		group GroupConfig
		want  string
	}{
		{GroupConfig{Name: "web", SlowStart: 10 * time.Second}, "slow start 10s: use 30s..15m0s"},
		{GroupConfig{Name: "web", SlowStart: time.Minute, Algorithm: AlgorithmLeastOutstanding}, "does not work with least_outstanding_requests"},
		{GroupConfig{Name: "web", AnomalyMitigation: true}, "anomaly mitigation needs algorithm weighted_random"},
	} {
		cfg := webConfig()
		cfg.Groups[0] = tc.group
		if err := New(nil).Apply(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.group, err, tc.want)
		}
	}
}

// wsBackend accepts a WebSocket-style upgrade and echoes lines prefixed by name.
func wsBackend(t *testing.T, name string) string {
	return addrOf(backend(t, name, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			io.WriteString(w, name)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		for {
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			rw.WriteString(name + ": " + line)
			rw.Flush()
		}
	}))
}

func TestWebSocketSurvivesTargetChangesAndEndsOnTerminate(t *testing.T) {
	first := wsBackend(t, "one")
	cfg := webConfig(serving("one", first))
	lb := start(t, cfg)
	c, err := net.Dial("tcp", lb.Addr("web"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	echo := func(i int) {
		t.Helper()
		fmt.Fprintf(c, "message %d\n", i)
		line, err := r.ReadString('\n')
		if want := fmt.Sprintf("one: message %d\n", i); err != nil || line != want {
			t.Fatalf("message %d: %q, %v; want %q", i, line, err, want)
		}
	}
	echo(0)
	second, third := wsBackend(t, "two"), wsBackend(t, "three")
	changes := []Config{
		webConfig(serving("one", first), serving("two", second)),
		webConfig(serving("one", first), serving("three", third)),
		webConfig(TargetConfig{ID: "one", Address: first}, serving("three", third)), // draining
	}
	for i, next := range changes {
		if err := lb.Apply(next); err != nil {
			t.Fatal(err)
		}
		echo(i + 1)
	}
	// Its deregistration delay ended with connection termination: the
	// agent calls Terminate, and the session ends.
	if n := lb.Terminate("one"); n != 1 {
		t.Errorf("Terminate closed %d connections, want the WebSocket's 1", n)
	}
	if line, err := r.ReadString('\n'); err == nil {
		t.Errorf("the session goes on after Terminate: %q", line)
	}
}
