package docker

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/berth-lb/berth/internal/doccheck"
)

// TestEveryLabelIsDocumented fails for a label the parser reads that
// docs/labels.md does not name. It reads the label names from the parser's
// source: every p.method("name" call names one.
func TestEveryLabelIsDocumented(t *testing.T) {
	src, err := os.ReadFile("labels.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`p\.[a-zA-Z]+\("([a-z][a-z.-]*)"`).FindAllSubmatch(src, -1) {
		names[string(m[1])] = true
	}
	missing := doccheck.Unnamed(t, "../../docs/labels.md", names, 20, func(name string) string {
		if strings.HasSuffix(name, ".") { // a prefix such as rule.header.
			return regexp.QuoteMeta("berth." + name)
		}
		// berth.stickiness must stand alone, not only inside berth.stickiness.duration.
		return regexp.QuoteMeta("berth."+name) + "([^a-z.-]|$)"
	})
	if len(missing) > 0 {
		t.Errorf("docs/labels.md does not name the labels %v (berth. omitted)", missing)
	}
}
