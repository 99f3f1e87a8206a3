package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// TokenAdvice says how to make an admin token, in every message that asks for one.
const TokenAdvice = "make one with: head -c 32 /dev/urandom | base64 > /etc/berth/admin-token"

// minTokenLength keeps guessable tokens out: 16 characters of base64 are 96 bits.
const minTokenLength = 16

// ReadToken reads a token file: one token of at least 16 visible ASCII
// characters, surrounding white space (the final newline) ignored.
func ReadToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot read the token file %s: %w", path, errors.Unwrap(err))
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("the token file %s is empty; %s", path, TokenAdvice)
	}
	for i := 0; i < len(token); i++ {
		if token[i] <= ' ' || token[i] > '~' {
			return "", fmt.Errorf("the token file %s must hold one token of visible ASCII characters, without spaces or line breaks; %s", path, TokenAdvice)
		}
	}
	if len(token) < minTokenLength {
		return "", fmt.Errorf("the token in %s has %d characters, fewer than %d: it could be guessed; %s", path, len(token), minTokenLength, TokenAdvice)
	}
	return token, nil
}
