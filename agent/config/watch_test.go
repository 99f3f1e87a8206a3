package config

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatchKeepsLastGoodConfig writes a good file, a bad one, then a fixed one and
// checks that only the configurations that validate reach onChange.
func TestWatchKeepsLastGoodConfig(t *testing.T) {
	clearEnv(t)
	path := writeFile(t, "admin: {listen: 127.0.0.1:7000}\n")
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan *Config, 10)
	failures := make(chan error, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watch(ctx, path, nil, 10*time.Millisecond, func(c *Config) { changes <- c }, func(err error) { failures <- err })
	}()
	t.Cleanup(func() { cancel(); <-done })

	// Rename over the file as editors do, so a watch on the old inode would miss it.
	replace := func(content string) {
		t.Helper()
		tmp := filepath.Join(filepath.Dir(path), ".berth.yaml.tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(10 * time.Second)

	select {
	case c := <-changes:
		if c.Admin.Listen != "127.0.0.1:7000" {
			t.Fatalf("initial load: admin.listen %q", c.Admin.Listen)
		}
	case err := <-failures:
		t.Fatalf("initial file reported as bad: %v", err)
	case <-deadline:
		t.Fatal("no initial load")
	}

	replace("admin: {listen: 127.0.0.1:7001}\n")
	select {
	case c := <-changes:
		if c.Admin.Listen != "127.0.0.1:7001" {
			t.Fatalf("first change: admin.listen %q", c.Admin.Listen)
		}
	case err := <-failures:
		t.Fatalf("good file reported as bad: %v", err)
	case <-deadline:
		t.Fatal("no reload of the good file")
	}

	replace("admin: {listen: nowhere}\n")
	select {
	case c := <-changes:
		t.Fatalf("a bad file reached onChange: %+v", c.Admin)
	case err := <-failures:
		if problems, ok := AsErrors(err); !ok || len(problems) != 1 || problems[0].Path != "admin.listen" {
			t.Fatalf("bad file: got %v", err)
		}
	case <-deadline:
		t.Fatal("bad file not reported")
	}

	replace("admin: {listen: 127.0.0.1:7002}\n")
	select {
	case c := <-changes:
		if c.Admin.Listen != "127.0.0.1:7002" {
			t.Fatalf("fixed file: admin.listen %q", c.Admin.Listen)
		}
	case err := <-failures:
		t.Fatalf("fixed file reported as bad: %v", err)
	case <-deadline:
		t.Fatal("fixed file not picked up")
	}
}

// TestWatchMissingFile checks that a removed file is reported (once, not on every
// poll) and that the file coming back is picked up.
func TestWatchMissingFile(t *testing.T) {
	clearEnv(t)
	const content = "admin: {listen: 127.0.0.1:7000}\n"
	path := writeFile(t, content)
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan *Config, 10)
	failures := make(chan error, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watch(ctx, path, nil, 10*time.Millisecond, func(c *Config) { changes <- c }, func(err error) { failures <- err })
	}()
	t.Cleanup(func() { cancel(); <-done })

	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("no initial load")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-failures:
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("got %v, want a not-exist error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("missing file not reported")
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-changes:
		if c.Admin.Listen != "127.0.0.1:7000" {
			t.Errorf("restored file: admin.listen %q", c.Admin.Listen)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("restored file not picked up")
	}
	if n := len(failures); n != 0 {
		t.Errorf("missing file reported %d more times", n)
	}
}
