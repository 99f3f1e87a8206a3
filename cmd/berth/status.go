package main

import (
	"errors"
	"io"
)

// Placeholder: the admin-API helper replaces this file.
func runStatus(args []string, stdout, stderr io.Writer) error  { return errors.New("todo") }
func runTargets(args []string, stdout, stderr io.Writer) error { return errors.New("todo") }
