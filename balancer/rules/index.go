package rules

import (
	"math"
	"sort"
)

// A Table finds the rules a request may match without scanning them all.
// Compile files each rule, by its position in priority order (its rank),
// under the literal ends of its host patterns; a rule that has no host
// condition, or a host pattern with no literal end (such as "*"), is filed
// under its path patterns instead, and a rule that cannot be filed under
// either is checked on every request, as are all the rules of a small table.
// A pattern is filed under the longest literal it starts or ends with: the
// whole pattern when it has no wildcard (svc1.example.com, /health), else its
// literal prefix (/api/*, api.*) or suffix (*.example.com, *.png), whichever
// is longer. Matching hashes the request's host and path once from each end,
// looks up each hash at the lengths some filed literal has, checks all the
// conditions of the rules it finds there, and keeps the one of lowest rank:
// exactly the rule a scan in priority order would return, since every rule
// that matches is found under the literal end of the pattern it matches by.

// FNV-1a, 64 bits: computed one byte at a time, so a request's host or path
// is hashed once for every prefix (or suffix) length at which it is looked up.
const (
	hashOffset uint64 = 14695981039346656037
	hashPrime  uint64 = 1099511628211
)

func hashByte(h uint64, c byte) uint64 { return (h ^ uint64(c)) * hashPrime }

// literalIndex holds ranks by the hash of a literal: of whole patterns, of
// prefixes or of suffixes. The keys are hashes already, so it is an open
// addressing table of them rather than a map, which would hash them again.
// Hashes that collide share a slot; the rules found are checked in full, so a
// collision costs a check, never a wrong answer.
type literalIndex struct {
	slots []rankSlot // a power of two in number, at most half of them used
	shift uint8      // 64 - log2(len(slots)): hashes pick slots by their top bits
	ranks []int32    // ascending within each slot's span
	lens  []int      // the distinct lengths of the filed literals, ascending
}

// rankSlot is where one hash's ranks lie in literalIndex.ranks; end is 0 in
// an empty slot, since a used one holds at least one rank.
type rankSlot struct {
	hash       uint64
	start, end int32
}

// slotOf spreads h over the slots by Fibonacci hashing: FNV-1a's low bits
// depend only on the low bits of what it hashed, its top bits on all of it.
func (x *literalIndex) slotOf(h uint64) int {
	return int((h * 0x9e3779b97f4a7c15) >> x.shift)
}

func (x *literalIndex) lookup(h uint64) []int32 {
	if len(x.slots) == 0 {
		return nil
	}
	s := &x.slots[x.slotFor(h)]
	return x.ranks[s.start:s.end]
}

// slotFor is the slot that holds h, or the empty one where h goes.
func (x *literalIndex) slotFor(h uint64) int {
	i := x.slotOf(h)
	for x.slots[i].end != 0 && x.slots[i].hash != h {
		i = (i + 1) & (len(x.slots) - 1)
	}
	return i
}

func (x *literalIndex) hasLen(n int) bool {
	i := sort.SearchInts(x.lens, n)
	return i < len(x.lens) && x.lens[i] == n
}

// filedLiteral is one literal to file: its hash, length and rule rank.
type filedLiteral struct {
	hash   uint64
	length int
	rank   int32
}

// newLiteralIndex files literals given in ascending rank order, so that each
// hash's ranks come out ascending without a sort: a first pass counts them
// in their slots (a rule with two patterns of one literal counts once), a
// second places each hash's span, a third writes the ranks.
func newLiteralIndex(filed []filedLiteral) literalIndex {
	var x literalIndex
	if len(filed) == 0 {
		return x // searched never: it has no lengths
	}
	bits := uint8(1)
	for 1<<bits < 2*len(filed) {
		bits++
	}
	x.slots, x.shift = make([]rankSlot, 1<<bits), 64-bits
	// next is per slot the rank counted last, plus one, then where the
	// slot's next rank goes.
	next := make([]int32, len(x.slots))
	var hasLen []bool // by length: literals of two lengths may share a hash
	for _, f := range filed {
		i := x.slotFor(f.hash)
		switch s := &x.slots[i]; {
		case s.end == 0:
			*s = rankSlot{hash: f.hash, end: 1}
		case next[i] != f.rank+1:
			s.end++
		}
		next[i] = f.rank + 1
		if f.length >= len(hasLen) {
			hasLen = append(hasLen, make([]bool, f.length+1-len(hasLen))...)
		}
		hasLen[f.length] = true
	}
	for n, ok := range hasLen {
		if ok {
			x.lens = append(x.lens, n)
		}
	}
	total := int32(0)
	for i := range x.slots {
		if s := &x.slots[i]; s.end != 0 {
			s.start, next[i] = total, total
			total += s.end
			s.end = total
		}
	}
	x.ranks = make([]int32, total)
	for _, f := range filed {
		i := x.slotFor(f.hash)
		if next[i] > x.slots[i].start && x.ranks[next[i]-1] == f.rank {
			continue
		}
		x.ranks[next[i]] = f.rank
		next[i]++
	}
	return x
}

// patternIndex files the patterns of one condition: hosts (foldCase) or paths.
type patternIndex struct {
	foldCase              bool
	exact, prefix, suffix literalIndex
	// first is the lowest rank filed here: once a rule of lower rank holds,
	// nothing here can win and the search is skipped.
	first int32
}

// patternFiling collects the literals of one condition's patterns while the
// rules are filed.
type patternFiling struct {
	exact, prefix, suffix []filedLiteral
	first                 int32
}

// fileable reports whether every pattern has a literal end to file it under;
// a rule with a pattern such as "*" or "*x*" matches too many strings for it.
func fileable(patterns []pattern) bool {
	for i := range patterns {
		if p := &patterns[i]; !p.literal && p.prefix == "" && p.suffix == "" {
			return false
		}
	}
	return len(patterns) > 0
}

func (f *patternFiling) add(rank int32, patterns []pattern) {
	f.first = min(f.first, rank)
	for i := range patterns {
		switch p := &patterns[i]; {
		case p.literal:
			f.exact = append(f.exact, filedLiteral{hashForward(p.text), len(p.text), rank})
		case len(p.prefix) >= len(p.suffix):
			f.prefix = append(f.prefix, filedLiteral{hashForward(p.prefix), len(p.prefix), rank})
		default:
			f.suffix = append(f.suffix, filedLiteral{hashBackward(p.suffix), len(p.suffix), rank})
		}
	}
}

func (f *patternFiling) index(foldCase bool) patternIndex {
	return patternIndex{foldCase: foldCase, exact: newLiteralIndex(f.exact),
		prefix: newLiteralIndex(f.prefix), suffix: newLiteralIndex(f.suffix), first: f.first}
}

// hashForward and hashBackward hash a compiled (already lower-cased) literal
// the way search hashes a request's string from its start and from its end.
func hashForward(s string) uint64 {
	h := hashOffset
	for i := 0; i < len(s); i++ {
		h = hashByte(h, s[i])
	}
	return h
}

func hashBackward(s string) uint64 {
	h := hashOffset
	for i := len(s) - 1; i >= 0; i-- {
		h = hashByte(h, s[i])
	}
	return h
}

// search offers m every rule filed under a literal s starts with, ends with
// or is. It hashes s no further than the longest literal it can be filed
// under, so a long path costs no more than a short one.
func (x *patternIndex) search(s string, m *matcher) {
	if x.first >= m.best {
		return
	}
	lens := x.prefix.lens
	n := 0
	if len(lens) > 0 {
		n = min(len(s), lens[len(lens)-1])
	}
	exact := len(x.exact.lens) > 0 && x.exact.hasLen(len(s))
	if exact {
		n = len(s)
	}
	h, next := hashOffset, 0
	for i := 0; i < n; i++ {
		h = hashByte(h, fold(s[i], x.foldCase))
		if next < len(lens) && lens[next] == i+1 {
			m.consider(x.prefix.lookup(h))
			next++
		}
	}
	if exact {
		m.consider(x.exact.lookup(h))
	}
	lens = x.suffix.lens
	if len(lens) == 0 {
		return
	}
	h, next = hashOffset, 0
	for i := 1; i <= min(len(s), lens[len(lens)-1]); i++ {
		h = hashByte(h, fold(s[len(s)-i], x.foldCase))
		if lens[next] == i {
			m.consider(x.suffix.lookup(h))
			next++
		}
	}
}

// matcher is one search of a Table: the request, and the lowest rank found
// so far whose rule holds.
type matcher struct {
	rules      []compiled
	host, path string
	req        *Request // nil for Match: host and path only
	best       int32
}

// consider checks the rules of ranks, ascending, until one holds; ranks at or
// above the best found so far cannot win and are not checked.
func (m *matcher) consider(ranks []int32) {
	for _, rank := range ranks {
		if rank >= m.best {
			return
		}
		if m.holds(&m.rules[rank]) {
			m.best = rank
			return
		}
	}
}

func (m *matcher) holds(r *compiled) bool {
	if m.req == nil {
		return r.hostsOnly && r.matchHostPath(m.host, m.path)
	}
	return r.matchHostPath(m.host, m.path) && (r.hostsOnly || r.matchOthers(m.req))
}

// scanUpTo is the size up to which a table is scanned in priority order
// rather than searched: checking a few rules costs less than hashing a host
// and a path (for one rule, about 250 instructions against 680).
const scanUpTo = 8

// fileRules builds the index of t.rules, which are in priority order.
func (t *Table) fileRules() {
	hosts, paths := patternFiling{first: math.MaxInt32}, patternFiling{first: math.MaxInt32}
	for i := range t.rules {
		if len(t.rules) <= scanUpTo {
			t.unfiled = append(t.unfiled, int32(i))
			continue
		}
		r, rank := &t.rules[i], int32(i)
		switch {
		case fileable(r.hosts):
			hosts.add(rank, r.hosts)
		case fileable(r.paths):
			paths.add(rank, r.paths)
		default:
			t.unfiled = append(t.unfiled, rank)
		}
	}
	t.hosts, t.paths = hosts.index(true), paths.index(false)
}

// find returns the Target of the lowest-ranked rule that holds for m, or -1.
func (t *Table) find(m *matcher) int {
	m.rules, m.best = t.rules, int32(len(t.rules))
	m.consider(t.unfiled)
	t.hosts.search(m.host, m)
	t.paths.search(m.path, m)
	if int(m.best) == len(t.rules) {
		return -1
	}
	return t.rules[m.best].target
}
