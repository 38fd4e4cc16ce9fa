//go:build !linux

package main

import "errors"

func compare(compareOpts) error { return errors.New("compare reads /proc: Linux only") }
