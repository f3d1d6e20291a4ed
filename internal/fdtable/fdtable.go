// Package fdtable grows the process's descriptor table at start, on a
// goroutine of its own, while the other packages initialise. Linux grows
// the table when a descriptor past its end is opened (64, then 128, 256,
// 512, ...), and in a process of several threads each growth waits for
// an RCU grace period, 3–9 ms here, with every other open of the process
// waiting behind it. A --nocopy import of the small preset holds ~360
// descriptors at its peak (directories whose files are queued, files being
// read, the store's): three growths mid-run, each leaving the cores idle
// while the readers' opens waited (docs/benchmarks.md#decisions).
package fdtable

import "runtime"

// Want is the descriptors the table is grown to hold.
const Want = 1024

func init() {
	if runtime.GOOS == "linux" {
		go grow(Want)
	}
}
