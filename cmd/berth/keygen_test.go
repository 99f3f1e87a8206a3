package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-lb/berth/agent/config"
)

// TestKeygen: each run prints a new key that cluster.secret-key-file accepts as AES-256.
func TestKeygen(t *testing.T) {
	var keys []string
	for range 2 {
		var out, errOut strings.Builder
		if code := dispatch([]string{"keygen"}, &out, &errOut); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		file := filepath.Join(t.TempDir(), "gossip.key")
		if err := os.WriteFile(file, []byte(out.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		read, err := config.ReadKeys(file)
		if err != nil {
			t.Fatalf("the key file is refused: %v", err)
		}
		if len(read) != 1 || len(read[0]) != 32 {
			t.Fatalf("want one 32-byte key, got %d keys", len(read))
		}
		keys = append(keys, out.String())
	}
	if keys[0] == keys[1] {
		t.Fatal("two runs printed the same key")
	}
	if code := dispatch([]string{"keygen", "extra"}, &strings.Builder{}, &strings.Builder{}); code != 2 {
		t.Fatalf("an argument gives exit %d, want 2", code)
	}
}
