package main

import (
	"errors"
	"io"
)

// Placeholder: the config helper replaces this file.
func runConfig(args []string, stdout, stderr io.Writer) error { return errors.New("todo") }
