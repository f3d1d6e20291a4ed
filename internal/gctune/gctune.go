// Package gctune sets the garbage collector's target for the process, as
// its own package so that it is set before the heavy package initialisers
// run: Go initialises packages in the order of their import paths, once
// their imports are (the spec, "Package initialization"), and this path
// sorts before github.com/ipfs/boxo's, whose gateway assets parse their
// HTML templates at init, and golang.org/x's. With the default target,
// initialisation alone ran four collections, about 3 ms of every
// command's start.
//
// An import's garbage is short-lived chunks: fewer collections, under a
// soft ceiling, for memory the RSS budget has (docs/benchmarks.md#decisions).
// GOGC and GOMEMLIMIT still win when set.
package gctune

import (
	"os"
	"runtime/debug"
)

func init() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(192 << 20)
	}
}
