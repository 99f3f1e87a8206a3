package config

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/pflag"
)

// Watch loads the file at path (with env and flags, as Load), then reloads it whenever
// its content changes, and blocks until ctx is done. onChange receives only a
// configuration that validates; a file that does not (or cannot be read) goes to
// onError, and the caller keeps its last good configuration. The first call, within a
// second, is for the content found when Watch starts: a change made between the
// caller's own Load and Watch is therefore never missed, at the cost of one repeat.
func Watch(ctx context.Context, path string, flags *pflag.FlagSet, onChange func(*Config), onError func(error)) {
	watch(ctx, path, flags, time.Second, onChange, onError)
}

// watch polls the content rather than using fsnotify: editors that save by writing a
// new file and renaming it over the old one replace the inode a watch is on, and
// comparing content also ignores saves that change nothing.
func watch(ctx context.Context, path string, flags *pflag.FlagSet, every time.Duration, onChange func(*Config), onError func(error)) {
	var last []byte
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		current := fingerprint(path)
		if bytes.Equal(current, last) {
			continue
		}
		last = current
		cfg, err := Load(path, flags)
		if err != nil {
			onError(err)
			continue
		}
		onChange(cfg)
	}
}

// fingerprint is the hash of the file's content; a missing file has its own, so that
// its disappearance is reported once.
func fingerprint(path string) []byte {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return []byte("missing")
	}
	if err != nil {
		return []byte("unreadable: " + err.Error())
	}
	sum := sha256.Sum256(data)
	return sum[:]
}
