// Package fastpathtest runs a test both ways the I/O can go: with the Linux
// fast paths on (where the system has them) and off (IPFS_SYNC_NO_FASTPATH,
// the portable calls every system has), so that neither goes untested on
// Linux.
package fastpathtest

import (
	"fmt"
	"testing"

	"github.com/ipfs-sync/ipfs-sync/internal/fastpath"
)

// BothModes runs fn as two subtests, "fast=true" and "fast=false", with
// the environment set for each.
func BothModes(t *testing.T, fn func(t *testing.T, fast bool)) {
	t.Helper()
	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprint("fast=", fast), func(t *testing.T) {
			if fast {
				t.Setenv(fastpath.Env, "")
			} else {
				t.Setenv(fastpath.Env, "1")
			}
			fn(t, fast)
		})
	}
}
