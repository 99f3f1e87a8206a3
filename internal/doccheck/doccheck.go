// Package doccheck is for tests that keep the reference documentation
// complete: every label, config key and metric named where a user looks.
package doccheck

import (
	"os"
	"regexp"
	"sort"
	"testing"
)

// Unnamed returns, sorted, the names that the document at path does not
// mention; mention gives the regular expression of a name's mention. It
// fails the test when fewer than least names were given, so a broken lookup
// of the names cannot pass for a complete document.
func Unnamed(t testing.TB, path string, names map[string]bool, least int, mention func(name string) string) []string {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < least {
		t.Fatalf("only %d names to look for in %s, want at least %d: the lookup of the names is broken", len(names), path, least)
	}
	var missing []string
	for name := range names {
		if !regexp.MustCompile(mention(name)).Match(doc) {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	return missing
}
