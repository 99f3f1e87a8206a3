package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ReadKeys reads a gossip key file: one base64 key of 16, 24 or 32 bytes per
// line (AES-128, -192 or -256), blank lines and # comments ignored. The first
// key encrypts; every key decrypts, which is how keys are rotated
// (docs/config.md, "Rotating the gossip key").
func ReadKeys(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w; make a key with: berth keygen > %s", path, errors.Unwrap(err), path)
	}
	var keys [][]byte
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
			return nil, fmt.Errorf("%s line %d: not the base64 of a 16, 24 or 32-byte key; make one with: berth keygen", path, i+1)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no key; make one with: berth keygen", path)
	}
	return keys, nil
}
