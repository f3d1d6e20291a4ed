package usort

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

type elem struct {
	key uint64
	seq int // order among equal keys is not kept: it only tells copies apart
}

// Sorted by buckets or by comparison, the result is slices.SortFunc's,
// whatever the keys: uniform, crowded into a few buckets, or equal.
func TestSortFunc(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := map[string]func(i int) uint64{
		"uniform":        func(int) uint64 { return rng.Uint64() },
		"first bucket":   func(int) uint64 { return rng.Uint64() >> 20 },
		"last bucket":    func(int) uint64 { return rng.Uint64() | 0xffff<<48 },
		"few keys":       func(i int) uint64 { return uint64(i%5) << 60 },
		"all equal":      func(int) uint64 { return 42 },
		"sorted already": func(i int) uint64 { return uint64(i) << 40 },
	}
	byKey := func(a, b elem) int { return cmp.Compare(a.key, b.key) }
	for name, key := range keys {
		for _, n := range []int{0, 1, 2, minBuckets - 1, minBuckets, 20000} {
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				s := make([]elem, n)
				for i := range s {
					s[i] = elem{key: key(i), seq: i}
				}
				want := slices.Clone(s)
				slices.SortFunc(want, byKey)
				SortFunc(s, func(e elem) uint16 { return uint16(e.key >> 48) }, byKey)
				for i := range s {
					if s[i].key != want[i].key {
						t.Fatalf("element %d: key %#x, want %#x", i, s[i].key, want[i].key)
					}
				}
				seen := make([]bool, n)
				for _, e := range s {
					if seen[e.seq] {
						t.Fatalf("element %d twice", e.seq)
					}
					seen[e.seq] = true
				}
			})
		}
	}
}

func BenchmarkSortFunc(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]elem, 20000)
	for i := range src {
		src[i] = elem{key: rng.Uint64(), seq: i}
	}
	byKey := func(a, b elem) int { return cmp.Compare(a.key, b.key) }
	s := make([]elem, len(src))
	b.Run("buckets", func(b *testing.B) {
		for b.Loop() {
			copy(s, src)
			SortFunc(s, func(e elem) uint16 { return uint16(e.key >> 48) }, byKey)
		}
	})
	b.Run("slices.SortFunc", func(b *testing.B) {
		for b.Loop() {
			copy(s, src)
			slices.SortFunc(s, byKey)
		}
	})
}
