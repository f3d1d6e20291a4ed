package sync

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ipfs-sync/ipfs-sync/diff"
)

// A directory's finish runs once, after every child is complete, and a
// wait returns once its result is: whether the children are known at
// once, complete before the join, or complete on other goroutines while
// it is made.
func TestWhenAllAndWait(t *testing.T) {
	for _, known := range []int{0, 1, 50} {
		for _, before := range []int{0, 1, 50} {
			for _, racing := range []int{0, 1, 50} {
				t.Run(fmt.Sprintf("known=%d/before=%d/racing=%d", known, before, racing), func(t *testing.T) {
					for range 20 {
						joinAndWait(t, known, before, racing)
					}
				})
			}
		}
	}
}

func joinAndWait(t *testing.T, known, before, racing int) {
	var rs []*result
	for i := range known {
		rs = append(rs, resolved(diff.Link{Name: fmt.Sprint("k", i)}))
	}
	for range before {
		r := newResult()
		r.complete()
		rs = append(rs, r)
	}
	var later []*result
	for range racing {
		r := newResult()
		rs = append(rs, r)
		later = append(later, r)
	}
	var wg sync.WaitGroup
	for i, r := range later {
		wg.Go(func() {
			r.link = diff.Link{Name: fmt.Sprint("r", i)}
			r.complete()
		})
	}
	var runs atomic.Int32
	out := newResult()
	whenAll(rs, func() {
		runs.Add(1)
		for _, r := range later {
			if r.link.Name == "" {
				t.Error("finish ran before a child was complete")
			}
		}
		out.complete()
	})
	out.wait()
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Fatalf("finish ran %d times", n)
	}
	for _, r := range rs {
		r.wait() // complete: returns at once
	}
}
