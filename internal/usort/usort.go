// Package usort sorts slices whose order is that of a uniformly
// distributed key, such as a hash. A counting sort on the key's top 16
// bits leaves buckets of one element or a few, each then sorted by
// comparison: for tens of thousands of elements a fraction of the time of
// slices.SortFunc, which compares each element about log2(n) times
// through a function value. Both of its callers sort on a run's last
// stretch, where one core works while the other waits: a pack's index
// when it is sealed, and the entries of the directory that is finished
// last, often the biggest.
package usort

import "slices"

// minBuckets is the fewest elements sorted by buckets; fewer go to
// slices.SortFunc, for which the bucket counts' 256 KiB would cost more
// than they save.
const minBuckets = 4096

// SortFunc sorts s in the order of cmp, where top16 is the top 16 bits of
// the key cmp orders by: a before b whenever top16(a) < top16(b).
func SortFunc[E any](s []E, top16 func(E) uint16, cmp func(a, b E) int) {
	if len(s) < minBuckets {
		slices.SortFunc(s, cmp)
		return
	}
	start := make([]int32, 1<<16+1)
	for _, e := range s {
		start[int(top16(e))+1]++
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	out := make([]E, len(s))
	next := slices.Clone(start[:1<<16])
	for _, e := range s {
		b := top16(e)
		out[next[b]] = e
		next[b]++
	}
	for b := range 1 << 16 {
		if bucket := out[start[b]:start[b+1]]; len(bucket) > 1 {
			slices.SortFunc(bucket, cmp)
		}
	}
	copy(s, out)
}
