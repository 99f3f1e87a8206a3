package gossip

import (
	"crypto/ed25519"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-lb/berth/discovery"
)

// benchCluster starts size nodes with berth's production memberlist settings
// (LAN failure detection), n0 on 127.0.0.10, every other node joining it; their
// transports can be cut (cut).
func benchCluster(b *testing.B, size int) []*node {
	b.Helper()
	var nodes []*node
	for i := range size {
		var join []string
		if i > 0 {
			join = []string{nodes[0].c.Addr()}
		}
		nodes = append(nodes, startNode(b, fmt.Sprintf("n%d", i), 10+i, join, nodeOptions{tune: productionDetection}))
	}
	waitFormed(b, nodes, 120*time.Second)
	return nodes
}

// arrivals waits until every node but the owner sees want(target) true, and
// returns each node's delay from start (a missing node: -1 after timeout).
func arrivals(nodes []*node, owner int, id string, want func(discovery.Target, bool) bool, start time.Time, timeout time.Duration) []time.Duration {
	out := make([]time.Duration, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		if i == owner {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.After(timeout)
			for {
				if t, ok := find(n, id); want(t, ok) {
					out[i] = time.Since(start)
					return
				}
				select {
				case <-n.c.Changes():
				case <-deadline:
					out[i] = -1
					return
				}
			}
		}()
	}
	wg.Wait()
	return append(out[:owner:owner], out[owner+1:]...)
}

type propagation struct {
	delays    []time.Duration // every node of every trial that arrived
	toAll     []time.Duration // the slowest node of each trial
	neverSeen int
}

func (p *propagation) add(delays []time.Duration) {
	slowest := time.Duration(0)
	for _, d := range delays {
		if d < 0 {
			p.neverSeen++
			continue
		}
		p.delays = append(p.delays, d)
		slowest = max(slowest, d)
	}
	p.toAll = append(p.toAll, slowest)
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func (p *propagation) report(b *testing.B, what string) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(quantile(p.delays, 0.5)), what+"-p50-ms")
	b.ReportMetric(ms(quantile(p.delays, 0.99)), what+"-p99-ms")
	b.ReportMetric(ms(quantile(p.toAll, 0.5)), what+"-all-p50-ms")
	b.ReportMetric(ms(quantile(p.toAll, 0.99)), what+"-all-p99-ms")
	b.ReportMetric(float64(p.neverSeen), what+"-never")
}

// BenchmarkGossipPropagation measures, per cluster size, how long a new
// target and then its drain take to reach every other node: each iteration
// is one trial on a random owner. Run with -benchtime=Nx (make bench-gossip).
func BenchmarkGossipPropagation(b *testing.B) {
	for _, size := range []int{3, 10, 50} {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			nodes := benchCluster(b, size)
			var added, drained propagation
			published := make([][]discovery.Target, size)
			// A warm-up change, not counted: right after 50 joins the cluster
			// is still busy converging (the first change then takes ~0.7 s).
			warm := target("n0", 1_000_000, nodes[0].ip)
			published[0] = []discovery.Target{warm}
			nodes[0].c.Publish(published[0], "")
			arrivals(nodes, 0, warm.ID, func(_ discovery.Target, ok bool) bool { return ok }, time.Now(), 10*time.Second)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				owner := i % size
				tg := target(fmt.Sprintf("n%d", owner), i, nodes[owner].ip)
				published[owner] = append(published[owner], tg)
				start := time.Now()
				nodes[owner].c.Publish(published[owner], "")
				added.add(arrivals(nodes, owner, tg.ID, func(_ discovery.Target, ok bool) bool { return ok }, start, 5*time.Second))

				published[owner][len(published[owner])-1].Draining = true
				start = time.Now()
				nodes[owner].c.Publish(published[owner], "")
				drained.add(arrivals(nodes, owner, tg.ID, func(t discovery.Target, ok bool) bool { return ok && t.Draining }, start, 5*time.Second))

				// As in life, a drain ends with the container gone: the target
				// leaves (not measured), so draining targets do not pile up.
				published[owner] = published[owner][:len(published[owner])-1]
				nodes[owner].c.Publish(published[owner], "")
				arrivals(nodes, owner, tg.ID, func(_ discovery.Target, ok bool) bool { return !ok }, time.Now(), 5*time.Second)
			}
			b.StopTimer()
			added.report(b, "add")
			drained.report(b, "drain")
		})
	}
}

// BenchmarkGossipDeadNode measures, with berth's production failure detection
// (memberlist LAN), the time from a node's crash (no leave) to its targets'
// removal on every survivor.
func BenchmarkGossipDeadNode(b *testing.B) {
	for _, size := range []int{3, 10, 50} {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			var removal propagation
			for b.Loop() {
				b.StopTimer()
				nodes := benchCluster(b, size)
				victim := size - 1
				tg := target(fmt.Sprintf("n%d", victim), 1, nodes[victim].ip)
				nodes[victim].c.Publish([]discovery.Target{tg}, "")
				arrivals(nodes, victim, tg.ID, func(_ discovery.Target, ok bool) bool { return ok }, time.Now(), 5*time.Second)
				b.StartTimer()
				start := time.Now()
				nodes[victim].stop(false)
				removal.add(arrivals(nodes, victim, tg.ID, func(_ discovery.Target, ok bool) bool { return !ok }, start, 30*time.Second))
				b.StopTimer()
				for _, n := range nodes {
					n.stop(false)
				}
				b.StartTimer()
			}
			removal.report(b, "removal")
		})
	}
}

// BenchmarkGossipHostLoss measures, with berth's production settings, the
// time from cutting a node off (every packet and stream to and from it lost)
// to its targets being marked Suspect, and so avoided by the balancer, on
// every other node; then the cut heals and the node answers again (not
// measured). Each iteration cuts the next node but n0.
func BenchmarkGossipHostLoss(b *testing.B) {
	const settle = 4 * time.Second
	for _, size := range []int{3, 10, 50} {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			nodes := benchCluster(b, size)
			ids := make([]string, size)
			for i, n := range nodes {
				tg := target(fmt.Sprintf("n%d", i), i, n.ip)
				ids[i] = tg.ID
				n.c.Publish([]discovery.Target{tg}, "")
			}
			for i := range nodes {
				arrivals(nodes, i, ids[i], func(_ discovery.Target, ok bool) bool { return ok }, time.Now(), 10*time.Second)
			}
			suspect := func(want bool) func(discovery.Target, bool) bool {
				return func(t discovery.Target, ok bool) bool { return ok && t.Suspect == want }
			}
			var avoided propagation
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				victim := 1 + i%(size-1)
				start := time.Now()
				cut(nodes, victim, true)
				avoided.add(arrivals(nodes, victim, ids[victim], suspect(true), start, 10*time.Second))
				b.StopTimer()
				cut(nodes, victim, false)
				arrivals(nodes, victim, ids[victim], suspect(false), time.Now(), 10*time.Second)
				// memberlist's own suspicions raised during the cut (the
				// victim's of the others, theirs of it) settle before the next
				// cut: one left pending would declare a member dead.
				time.Sleep(settle)
				b.StartTimer()
			}
			b.StopTimer()
			avoided.report(b, "avoided")
		})
	}
}

// BenchmarkGossipIdleCost measures what a fleet that changes nothing costs
// in one process, per agent: CPU and bytes allocated per second, and the
// process's garbage collections per second. The agents only ping each other
// (suspect.go), run memberlist's probes and gossip. Each iteration is one
// window of idleCostWindow.
func BenchmarkGossipIdleCost(b *testing.B) {
	const idleCostWindow = 2 * time.Second
	for _, size := range []int{10, 50} {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			benchCluster(b, size)
			time.Sleep(idleCostWindow) // the joins' own traffic settles
			var cpu, measured time.Duration
			var bytes, gcs uint64
			for b.Loop() {
				cpu0, bytes0, gcs0 := processUsage(b)
				time.Sleep(idleCostWindow)
				cpu1, bytes1, gcs1 := processUsage(b)
				cpu, bytes, gcs = cpu+cpu1-cpu0, bytes+bytes1-bytes0, gcs+gcs1-gcs0
				measured += idleCostWindow
			}
			perAgentSecond := float64(size) * measured.Seconds()
			b.ReportMetric(float64(cpu.Milliseconds())/perAgentSecond, "cpu-ms/agent-s")
			b.ReportMetric(float64(bytes)/1024/perAgentSecond, "alloc-KiB/agent-s")
			b.ReportMetric(float64(gcs)/measured.Seconds(), "gc/s")
		})
	}
}

// processUsage is the CPU time this process has used, the bytes it has
// allocated and its garbage collections so far.
func processUsage(b *testing.B) (cpu time.Duration, allocated, gcs uint64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ms.TotalAlloc, uint64(ms.NumGC)
}

// BenchmarkGossipBytesPerTarget reports the bytes one target takes: in a
// delta (one change, one UDP packet) and in a full state of 100 targets.
func BenchmarkGossipBytesPerTarget(b *testing.B) {
	tg := target("host-a", 1, "10.0.0.5")
	tg.ContainerName = "shop-web-1"
	tg.Created = time.Unix(1_700_000_000, 0)
	var fullState full
	fullState.Owner, fullState.Epoch, fullState.Seq = "host-a", time.Now().UnixNano(), 100
	for i := range 100 {
		t := target("host-a", i, "10.0.0.5")
		t.ContainerName = fmt.Sprintf("shop-web-%d", i)
		fullState.Targets = append(fullState.Targets, toWire(t))
	}
	w := toWire(tg)
	_, key, _ := ed25519.GenerateKey(nil)
	from := "host-a@" + strconv.FormatInt(fullState.Epoch, 36)
	var deltaBytes, fullBytes int
	for b.Loop() {
		deltaBytes = len(seal(key, kindDelta, from, &delta{Owner: "host-a", Epoch: fullState.Epoch, Seq: 42, SentAt: time.Now().UnixNano(), Target: &w}))
		fullBytes = len(seal(key, kindFull, from, &fullState))
	}
	b.ReportMetric(float64(deltaBytes), "delta-bytes")
	b.ReportMetric(float64(fullBytes)/100, "full-bytes/target")
}
