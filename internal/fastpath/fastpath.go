// Package fastpath owns the switch between the Linux-only I/O fast paths
// (AIO and O_DIRECT pack writes, preadv2(RWF_NOWAIT) reads, syncfs(2),
// copy_file_range(2)) and the portable calls every Unix has: the only ones
// on other systems, and the ones Linux falls back to wherever the kernel
// refuses a fast path. Setting IPFS_SYNC_NO_FASTPATH=1 makes Linux use the
// portable ones throughout, so that they run, and are tested, there too.
package fastpath

import (
	"os"
	"runtime"
)

// Env is the environment variable that turns the fast paths off: any
// value but "" or "0".
const Env = "IPFS_SYNC_NO_FASTPATH"

// On reports whether the Linux fast paths may be tried. It reads the
// environment on every call, so that a test can set it (t.Setenv): it is
// asked once per store, pull or file opened, never per read or write.
func On() bool {
	if runtime.GOOS != "linux" {
		return false
	}
	v := os.Getenv(Env)
	return v == "" || v == "0"
}
