package pull

import (
	"sync"

	"github.com/ipfs/go-cid"
)

// task is one entry to make right.
type task struct {
	dir  *dirNode
	name string
	cid  cid.Cid
	size uint64 // the link's Tsize: a hint of how big the entry is
	// changed: DEST is known not to hold it (no record, or another CID)
	changed bool
}

// queue is a LIFO of tasks with N workers: depth-first, so few directories
// are open at once and a subtree finishes before the next starts. Big
// changed entries go first, whenever they are found: on an update a few
// multi-megabyte index files are the long poles, and behind the thousands
// of small tasks of a big directory they would start last.
type queue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	stack   []task
	big     []task
	pending int
	closed  bool
}

// bigTask is the Tsize from which a changed entry is fetched first.
const bigTask = 256 << 10

func newQueue() *queue {
	q := &queue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) push(ts []task) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	// Reversed, so the first name is popped first.
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].changed && ts[i].size >= bigTask {
			q.big = append(q.big, ts[i])
		} else {
			q.stack = append(q.stack, ts[i])
		}
	}
	q.pending += len(ts)
	q.cond.Broadcast()
}

func (q *queue) pop() (task, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.stack)+len(q.big) == 0 && !q.closed {
		q.cond.Wait()
	}
	s := &q.big
	if len(q.big) == 0 {
		s = &q.stack
	}
	if len(*s) == 0 {
		return task{}, false
	}
	t := (*s)[len(*s)-1]
	*s = (*s)[:len(*s)-1]
	return t, true
}

// hold keeps the queue open (as a pending task would) until done.
func (q *queue) hold() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending++
}

func (q *queue) done() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending--; q.pending == 0 {
		q.closed = true
		q.cond.Broadcast()
	}
}

func (q *queue) abort() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.stack, q.big = nil, nil
	q.cond.Broadcast()
}
