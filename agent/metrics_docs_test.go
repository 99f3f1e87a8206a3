package agent

import (
	"regexp"
	"strings"
	"testing"

	"github.com/berth-lb/berth/internal/doccheck"
	"github.com/prometheus/client_golang/prometheus"
)

// TestEveryMetricIsDocumented fails for a berth_ metric the agent serves that
// docs/metrics.md does not name.
func TestEveryMetricIsDocumented(t *testing.T) {
	a := &Agent{}
	a.newRegistry()
	ch := make(chan *prometheus.Desc, 100)
	for _, c := range []prometheus.Collector{collector{a}, a.reloads, a.failOpenCount, buildInfo("")} {
		c.Describe(ch)
	}
	close(ch)
	names := map[string]bool{}
	fqName := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil && strings.HasPrefix(m[1], "berth_") {
			names[m[1]] = true
		}
	}
	missing := doccheck.Unnamed(t, "../docs/metrics.md", names, 30, func(name string) string { return `\b` + name + `\b` })
	if len(missing) > 0 {
		t.Errorf("docs/metrics.md does not name the metrics %v", missing)
	}
}
