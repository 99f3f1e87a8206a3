package docker

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestParseLabelsGolden reads testdata/labels/*.txtar: the comment may hold
// "prefix=NAME", the "labels" section holds key=value lines, and the "want" section
// the rendered Spec or error.
func TestParseLabelsGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/labels/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files in testdata/labels")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			archive, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			prefix := ""
			for _, line := range strings.Split(string(archive.Comment), "\n") {
				if value, ok := strings.CutPrefix(line, "prefix="); ok {
					prefix = value
				}
			}
			labels := map[string]string{}
			wantIndex := -1
			for i, f := range archive.Files {
				switch f.Name {
				case "labels":
					for _, line := range strings.Split(strings.TrimSpace(string(f.Data)), "\n") {
						if line == "" {
							continue
						}
						key, value, ok := strings.Cut(line, "=")
						if !ok {
							t.Fatalf("labels line %q: want key=value", line)
						}
						labels[key] = value
					}
				case "want":
					wantIndex = i
				default:
					t.Fatalf("unknown section %q: want labels and want", f.Name)
				}
			}
			if wantIndex < 0 {
				t.Fatal("no want section")
			}
			spec, err := ParseLabels(prefix, labels)
			got := renderSpec(cmp.Or(prefix, DefaultLabelPrefix), spec, err)
			if *update {
				archive.Files[wantIndex].Data = []byte(got)
				if err := os.WriteFile(file, txtar.Format(archive), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := string(archive.Files[wantIndex].Data); got != want {
				t.Errorf("ParseLabels:\n got:\n%s\nwant:\n%s\n(run go test -run TestParseLabelsGolden -update to accept)", got, want)
			}
		})
	}
}

// renderSpec is a stable text form of what ParseLabels returned.
func renderSpec(prefix string, spec Spec, err error) string {
	var b strings.Builder
	if err != nil {
		var labelErrs LabelErrors
		if !errors.As(err, &labelErrs) {
			return fmt.Sprintf("unexpected error type %T: %v\n", err, err)
		}
		fmt.Fprintf(&b, "error: %v\n", err)
		writeLabelErrors(&b, labelErrs)
		return b.String()
	}
	if spec.Groups == nil {
		return "ignored: no group label\n"
	}
	fmt.Fprintf(&b, "groups: %s\n", strings.Join(spec.Groups, ","))
	fmt.Fprintf(&b, "port: %d/%s\n", spec.Port, spec.Proto)
	fmt.Fprintf(&b, "weight: %d\n", spec.Weight)
	if d := spec.Settings.DeregistrationDelay; d != nil {
		fmt.Fprintf(&b, "deregistration-delay: %s\n", *d)
	} else {
		b.WriteString("deregistration-delay: unset\n")
	}
	fmt.Fprintf(&b, "algorithm: %q\n", spec.Settings.Algorithm)
	fmt.Fprintf(&b, "slow-start: %s\n", spec.Settings.SlowStart)
	if spec.Settings.Protocol != "" {
		fmt.Fprintf(&b, "protocol: %s\n", spec.Settings.Protocol)
	}
	if spec.Settings.ProxyProtocol != "" {
		fmt.Fprintf(&b, "proxy-protocol: %s\n", spec.Settings.ProxyProtocol)
	}
	if spec.Settings.ConnectionTermination {
		b.WriteString("connection-termination: true\n")
	}
	if st := spec.Settings.Stickiness; st.Type != "" {
		fmt.Fprintf(&b, "stickiness: %s cookie=%q duration=%s\n", st.Type, st.Cookie, st.Duration)
	}
	fmt.Fprintf(&b, "health: %+v\n", spec.Settings.Health)
	if r := spec.Rule; r != nil {
		fmt.Fprintf(&b, "rule: listener=%s priority=%d hosts=%q paths=%q group=%s\n", r.Listener, r.Priority, r.Hosts, r.Paths, r.Group)
		if len(r.Methods)+len(r.Headers)+len(r.Queries)+len(r.SourceIPs) > 0 {
			fmt.Fprintf(&b, "rule conditions: methods=%q headers=%q queries=%q source-ips=%q\n", r.Methods, r.Headers, r.Queries, r.SourceIPs)
		}
	} else {
		b.WriteString("rule: none\n")
	}
	fmt.Fprintf(&b, "ignored: %q\n", spec.Ignored)
	if len(spec.LeftOut) > 0 {
		fmt.Fprintf(&b, "left out: %s\n", spec.LeftOut.leftOutReason(prefix))
		writeLabelErrors(&b, spec.LeftOut)
	}
	return b.String()
}

func writeLabelErrors(b *strings.Builder, errs LabelErrors) {
	for _, e := range errs {
		fmt.Fprintf(b, "  label=%s value=%q\n  want %s\n", e.Label, e.Value, e.Want)
	}
}
