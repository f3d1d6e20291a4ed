// Package testtier owns the switch between the test suite's three sizes, so
// every package sizes its long-running tests the same way:
//
//   - go test -short: the smallest runs, for the race detector (make race);
//   - go test: the fast tier, the whole module in under a minute on two
//     cores (make unit), randomised tests with a few short sequences;
//   - IPFS_SYNC_LONG=1 go test: the long tier CI runs (make test-long), the
//     long randomised sequences and the inputs of 100 MB and more.
//
// -short wins over IPFS_SYNC_LONG, so a race run stays short whatever the
// environment says.
package testtier

import (
	"os"
	"testing"
)

// Env is the environment variable that selects the long tier.
const Env = "IPFS_SYNC_LONG"

// Long reports whether the long tier runs.
func Long() bool {
	return os.Getenv(Env) != "" && !testing.Short()
}

// Size picks a test's size for the tier that runs.
func Size(short, fast, long int) int {
	switch {
	case testing.Short():
		return short
	case Long():
		return long
	}
	return fast
}
