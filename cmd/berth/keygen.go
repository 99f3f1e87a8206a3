package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
)

// runKeygen prints a fresh gossip key: 32 random bytes (AES-256) in base64,
// the format cluster.secret-key-file reads.
func runKeygen(args []string, stdout, _ io.Writer) error {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			fmt.Fprintln(stdout, "usage: berth keygen > /etc/berth/gossip.key\n\nPrints a new random 32-byte gossip key in base64 for cluster.secret-key-file (docs/fleet.md).")
			return nil
		}
		return &exitError{code: 2, err: fmt.Errorf("takes no arguments; usage: berth keygen > /etc/berth/gossip.key")}
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("read random bytes: %w", err)
	}
	_, err := fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(key))
	return err
}
