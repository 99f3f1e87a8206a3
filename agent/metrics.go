package agent

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/berth-lb/berth/balancer"
)

// Metric descriptions. docs/metrics.md lists them for users; keep both in step.
var (
	descRequests = prometheus.NewDesc("berth_http_requests_total",
		"HTTP requests answered, by listener, target group (empty: no group, e.g. fixed responses and 404s) and status code.",
		[]string{"listener", "group", "code"}, nil)
	descDuration = prometheus.NewDesc("berth_http_request_duration_seconds",
		"Time from the first byte of a request to the last byte of its response, by listener and group.",
		[]string{"listener", "group"}, nil)
	descBalancerErrors = prometheus.NewDesc("berth_http_balancer_errors_total",
		"Answers the balancer gave itself (400, 408, 431, 502, 503, 504), by listener and reason.",
		[]string{"listener", "reason"}, nil)
	descConnsActive = prometheus.NewDesc("berth_listener_connections_active",
		"Client connections open now, by listener.", []string{"listener"}, nil)
	descConnsTotal = prometheus.NewDesc("berth_listener_connections_total",
		"Client connections accepted, by listener.", []string{"listener"}, nil)
	descTargetInFlight = prometheus.NewDesc("berth_target_in_flight_requests",
		"Requests in flight to a target now.", []string{"target"}, nil)
	descTargetRequests = prometheus.NewDesc("berth_target_requests_total",
		"Requests sent to a target.", []string{"target"}, nil)
	descTargetFailures = prometheus.NewDesc("berth_target_failures_total",
		"Requests to a target that failed: connect errors, resets, timeouts, malformed responses.", []string{"target"}, nil)
	descTargets = prometheus.NewDesc("berth_targets",
		"Targets by group and state (healthy, initial, unhealthy, unused, draining).", []string{"group", "state"}, nil)
	descSkipped = prometheus.NewDesc("berth_docker_skipped_containers",
		"Labelled containers that could not be registered; berth status shows why.", nil, nil)
	descDockerConnected = prometheus.NewDesc("berth_docker_connected",
		"1 while the agent follows the Docker events stream, else 0.", nil, nil)
	descDockerEvents = prometheus.NewDesc("berth_docker_events_total",
		"Docker container events received, by action.", []string{"action"}, nil)
	descDockerResyncs = prometheus.NewDesc("berth_docker_resyncs_total",
		"Periodic full re-lists of the containers.", nil, nil)
	descDockerReconnects = prometheus.NewDesc("berth_docker_reconnects_total",
		"Times the connection to Docker was established again after a loss.", nil, nil)
)

// collector reads the balancer's and the watcher's counters at scrape time, so
// the request path only does atomic adds.
type collector struct{ a *Agent }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descDuration, descBalancerErrors, descConnsActive, descConnsTotal,
		descTargetInFlight, descTargetRequests, descTargetFailures, descTargets, descSkipped,
		descDockerConnected, descDockerEvents, descDockerResyncs, descDockerReconnects} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.a.lb.Routes() {
		for code, n := range r.Codes {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(n), r.Listener, r.Group, strconv.Itoa(code))
		}
		buckets := make(map[float64]uint64, len(balancer.LatencyBuckets))
		for i, le := range balancer.LatencyBuckets {
			buckets[le] = r.Buckets[i]
		}
		ch <- prometheus.MustNewConstHistogram(descDuration, r.Count, r.Sum.Seconds(), buckets, r.Listener, r.Group)
	}
	for _, l := range c.a.lb.Listeners() {
		ch <- prometheus.MustNewConstMetric(descConnsActive, prometheus.GaugeValue, float64(l.ActiveConnections), l.Name)
		ch <- prometheus.MustNewConstMetric(descConnsTotal, prometheus.CounterValue, float64(l.TotalConnections), l.Name)
		for reason, n := range l.Errors {
			ch <- prometheus.MustNewConstMetric(descBalancerErrors, prometheus.CounterValue, float64(n), l.Name, reason.String())
		}
	}
	for _, t := range c.a.lb.Targets() {
		ch <- prometheus.MustNewConstMetric(descTargetInFlight, prometheus.GaugeValue, float64(t.InFlight), t.ID)
		ch <- prometheus.MustNewConstMetric(descTargetRequests, prometheus.CounterValue, float64(t.Requests), t.ID)
		ch <- prometheus.MustNewConstMetric(descTargetFailures, prometheus.CounterValue, float64(t.Failures), t.ID)
	}
	if v := c.a.view.Load(); v != nil {
		for _, g := range v.desired.groups {
			for _, state := range []string{"healthy", "initial", "unhealthy", "unused", "draining"} {
				ch <- prometheus.MustNewConstMetric(descTargets, prometheus.GaugeValue, float64(g.States[state]), g.Name, state)
			}
		}
		ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.GaugeValue, float64(len(v.skipped)))
	}
	if c.a.watcher != nil {
		s := c.a.watcher.Stats()
		connected := 0.0
		if s.Connected {
			connected = 1
		}
		ch <- prometheus.MustNewConstMetric(descDockerConnected, prometheus.GaugeValue, connected)
		for action, n := range s.Events {
			ch <- prometheus.MustNewConstMetric(descDockerEvents, prometheus.CounterValue, float64(n), action)
		}
		ch <- prometheus.MustNewConstMetric(descDockerResyncs, prometheus.CounterValue, float64(s.Resyncs))
		ch <- prometheus.MustNewConstMetric(descDockerReconnects, prometheus.CounterValue, float64(s.Reconnects))
	}
}

func (a *Agent) newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	a.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "berth_config_reloads_total",
		Help: "Config file reloads, by result (success, failure: the last good config stayed in force).",
	}, []string{"result"})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "berth_build_info", Help: "1, labelled with the running version."}, []string{"version"})
	info.WithLabelValues(a.opts.Version).Set(1)
	reg.MustRegister(collector{a}, a.reloads, info, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
