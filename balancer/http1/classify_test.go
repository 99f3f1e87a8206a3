package http1

import "testing"

// classifyByScan is what classify computes, the slow way: the reference.
func classifyByScan(name []byte) FieldKind {
	for _, k := range knownFields {
		if EqualFold(name, k.name) {
			return k.kind
		}
	}
	return FieldOther
}

// Every byte of every known name, replaced by each of the 256 values, is
// classified as the reference classifies it: only a letter's other case
// keeps the name known (a CR for the '-' of "user-agent" would otherwise
// skip the token check of an unknown name).
func TestClassifyAgreesWithTheScan(t *testing.T) {
	for _, k := range knownFields {
		name := []byte(k.name)
		if got := classify(name); got != k.kind {
			t.Fatalf("classify(%q) = %d, want %d", name, got, k.kind)
		}
		for i := range name {
			for c := range 256 {
				b := append([]byte(nil), name...)
				b[i] = byte(c)
				if got, want := classify(b), classifyByScan(b); got != want {
					t.Fatalf("classify(%q) = %d, the scan says %d", b, got, want)
				}
			}
		}
	}
}

func TestClassifyCases(t *testing.T) {
	tests := []struct {
		name string
		want FieldKind
	}{
		{"Host", FieldHost},
		{"HOST", FieldHost},
		{"hOsT", FieldHost},
		{"hos", FieldOther},
		{"hostx", FieldOther},
		{"TE", FieldTE},
		{"Content-Length", FieldContentLength},
		{"Content_Length", FieldOther},
		{"X-Forwarded-Proto", FieldXForwardedProto},
		{"X-FORWARDED-PORT", FieldXForwardedPort},
		{"X-Forwarded-Prot", FieldOther},
		{"Transfer-Encoding", FieldTransferEncoding},
		{"Transfer-Encodinh", FieldOther},
		{"User-Agent", FieldUserAgent},
		{"User\rAgent", FieldOther},
		{"", FieldOther},
		{"a-very-long-field-name-beyond-any-known", FieldOther},
	}
	for _, tt := range tests {
		if got := classify([]byte(tt.name)); got != tt.want {
			t.Errorf("classify(%q) = %d, want %d", tt.name, got, tt.want)
		}
	}
}
