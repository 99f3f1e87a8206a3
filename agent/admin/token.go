package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/berth-lb/berth/agent/config"
)

// Token is the admin API's bearer token. Its file is read again when its size
// or modification time changes, so a token is rotated without a restart; while
// the file is unusable every call that needs the token is refused.
type Token struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	size    int64
	modTime time.Time
	// sum is the SHA-256 of the token: comparing hashes of equal length
	// leaks neither the token nor its length through timing.
	sum [sha256.Size]byte
	err error
}

// OpenToken reads the token file at path; its error says what is wrong with
// the file. log receives the outcome of later reloads.
func OpenToken(path string, log *slog.Logger) (*Token, error) {
	t := &Token{path: path, log: log}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// check reports whether given is the token; err is not nil while the file is unusable.
func (t *Token) check(given string) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if info, err := os.Stat(t.path); err != nil || info.Size() != t.size || !info.ModTime().Equal(t.modTime) {
		failing := t.err != nil
		if err := t.reload(); err != nil {
			if !failing {
				t.log.Error("admin: the token file became unusable; calls that need the token are refused until it is fixed", "err", err)
			}
		} else {
			t.log.Info("admin: token file read again", "file", t.path)
		}
	}
	if t.err != nil {
		return false, t.err
	}
	sum := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1, nil
}

// reload reads the file; t.mu is held.
func (t *Token) reload() error {
	t.size, t.modTime = -1, time.Time{}
	if info, err := os.Stat(t.path); err == nil {
		t.size, t.modTime = info.Size(), info.ModTime()
	}
	token, err := config.ReadToken(t.path)
	t.err = err
	if err != nil {
		t.sum = [sha256.Size]byte{}
		return err
	}
	t.sum = sha256.Sum256([]byte(token))
	return nil
}
