package agent

import (
	"cmp"
	"slices"
	"sort"
	"strings"

	"github.com/berth-lb/berth/balancer/rules"
	"github.com/berth-lb/berth/discovery"
)

// maxUnnumbered is how many label rules without a priority one listener
// takes: they are numbered above every priority a user can give.
const maxUnnumbered = rules.MaxDefaultPriority - rules.MaxPriority

// numberUnnumbered gives the label rules that have no priority theirs: after
// rules.MaxPriority, most specific first, ties broken by the rule's text. The
// order of two rules depends on nothing but the two rules, so every node of
// the fleet evaluates them in the same order whatever else it knows, and no
// two distinct rules get one number (identical ones are one rule). What does
// not fit is returned for a conflict.
func numberUnnumbered(in []discovery.Rule) (numbered, dropped []discovery.Rule) {
	sorted := slices.Clone(in)
	slices.SortFunc(sorted, func(a, b discovery.Rule) int {
		return cmp.Or(cmp.Compare(specificity(b), specificity(a)), strings.Compare(ruleKey(a), ruleKey(b)))
	})
	if len(sorted) > maxUnnumbered {
		sorted, dropped = sorted[:maxUnnumbered], sorted[maxUnnumbered:]
	}
	for i := range sorted {
		sorted[i].Priority = rules.MaxPriority + 1 + i
	}
	return sorted, dropped
}

// specificity is how much of a request a rule pins down: for each condition
// (host, path, method, each header, query, source IP) one plus the literal
// bytes (all but *) of its broadest value, the one with the fewest. A rule
// matches when each condition matches any of its values, so the broadest
// value is what the condition requires at least.
func specificity(r discovery.Rule) int {
	n := 0
	condition := func(values []string) {
		if len(values) == 0 {
			return
		}
		least := len(values[0])
		for _, v := range values {
			least = min(least, len(v)-strings.Count(v, "*"))
		}
		n += 1 + least
	}
	condition(r.Hosts)
	condition(r.Paths)
	condition(r.Methods)
	for _, values := range r.Headers {
		condition(values)
	}
	queries := make([]string, len(r.Queries))
	for i, q := range r.Queries {
		queries[i] = q.Key + q.Value
	}
	condition(queries)
	condition(r.SourceIPs)
	return n
}

// ruleKey is a rule's canonical text: the same for replicas that list values
// in another order, different for any two rules that differ in anything else.
func ruleKey(r discovery.Rule) string {
	return r.Listener + "\x00" + itoa(r.Priority) + "\x00" + r.Group + "\x00" + conditionsKey(r)
}

// conditionsKey is the canonical text of a rule's conditions alone.
func conditionsKey(r discovery.Rule) string {
	var b strings.Builder
	field := func(values []string) {
		sorted := slices.Clone(values)
		sort.Strings(sorted)
		b.WriteString(strings.Join(sorted, ","))
		b.WriteByte(0)
	}
	field(r.Hosts)
	field(r.Paths)
	field(r.Methods)
	names := sortedKeys(r.Headers)
	for _, name := range names {
		b.WriteString(name + ":")
		field(r.Headers[name])
	}
	b.WriteByte(0)
	queries := make([]string, len(r.Queries))
	for i, q := range r.Queries {
		queries[i] = q.Key + "=" + q.Value
	}
	field(queries)
	field(r.SourceIPs)
	return b.String()
}
