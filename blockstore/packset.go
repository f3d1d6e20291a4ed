package blockstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mh "github.com/multiformats/go-multihash"
	"github.com/zeebo/xxh3"

	"github.com/ipfs-sync/ipfs-sync/internal/fastpath"
	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
)

// packSet is the packs and indexes one process sees. A reader reloads it
// when a block is missing and the directory changed, so serve finds what a
// sync wrote after it started; packs it has open stay readable after a gc
// deletes them.
type packSet struct {
	dir string

	mu    sync.RWMutex // a leaf (lock order: packWriter)
	idx   map[string]*idxFile
	files map[string]*packFile
	stamp time.Time // the directory's mtime at the last load
}

// packFile is an open pack. One no index names any more (a gc rewrote
// it) is closed when the last read of it ends, so that its space is
// freed while serve runs.
type packFile struct {
	f     *os.File
	fd    uintptr
	reads int
	gone  bool
	// noWait: every read is a pread: RWF_NOWAIT is refused here, or
	// there are no fast paths (readCached).
	noWait atomic.Bool
}

// readCached reads b at off if the page cache holds all of it, without
// giving up the P (fsat.PreadNoWait); false: read it with pread.
func (p *packFile) readCached(b []byte, off int64) bool {
	if p.noWait.Load() {
		return false
	}
	n, err := fsat.PreadNoWait(p.fd, b, off)
	if err != nil {
		p.noWait.Store(true)
	}
	return n == len(b)
}

func newPackSet(dir string) *packSet {
	return &packSet{dir: dir, idx: map[string]*idxFile{}, files: map[string]*packFile{}}
}

// load brings the set up to the directory: new .idx files loaded, gone
// ones dropped. It reports whether anything changed.
func (s *packSet) load() (bool, error) {
	st, err := os.Stat(s.dir)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.ModTime().Equal(s.stamp) {
		return false, nil
	}
	names, err := listSuffix(s.dir, ".idx")
	if err != nil {
		return false, err
	}
	present := map[string]bool{}
	changed := false
	for _, n := range names {
		present[n] = true
		if s.idx[n] != nil {
			continue
		}
		x, err := loadIdx(filepath.Join(s.dir, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed by a gc since the listing
		}
		if err != nil {
			return false, err
		}
		s.idx[n] = x
		changed = true
	}
	for n, x := range s.idx {
		if !present[n] && !strings.HasSuffix(n, ".new") {
			x.close()
			delete(s.idx, n)
			changed = true
		}
	}
	// Directory times are coarse (a kernel tick): one this recent may be
	// shared by a change still to come, so it proves nothing next time.
	s.stamp = time.Time{}
	if time.Since(st.ModTime()) > time.Second {
		s.stamp = st.ModTime()
	}
	s.closeUnusedLocked()
	return changed, nil
}

// closeUnusedLocked closes packs no loaded idx names.
func (s *packSet) closeUnusedLocked() {
	used := s.packNamesLocked()
	for name := range s.files {
		if !used[name] {
			s.dropLocked(name)
		}
	}
}

// dropLocked forgets the pack called name; its file is closed now, or
// when the last read of it ends.
func (s *packSet) dropLocked(name string) {
	p := s.files[name]
	if p == nil {
		return
	}
	p.gone = true
	delete(s.files, name)
	if p.reads == 0 {
		p.f.Close()
	}
}

func (s *packSet) packNamesLocked() map[string]bool {
	used := map[string]bool{}
	for _, x := range s.idx {
		for _, p := range x.packs {
			used[p] = true
		}
	}
	return used
}

func (s *packSet) find(k key) (loc, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, x := range s.idx {
		l, ok, err := x.find(k)
		if ok || err != nil {
			return l, ok, err
		}
	}
	return loc{}, false, nil
}

// add puts an idx this process wrote into the set.
func (s *packSet) add(x *idxFile) {
	s.mu.Lock()
	s.idx[x.name] = x
	s.mu.Unlock()
}

// acquire opens (once) the pack called name for a read; release it.
func (s *packSet) acquire(name string) (*packFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.files[name]
	if p == nil {
		f, err := os.Open(filepath.Join(s.dir, name+".pack"))
		if err != nil {
			return nil, err
		}
		p = &packFile{f: f, fd: f.Fd()}
		p.noWait.Store(!fastpath.On())
		s.files[name] = p
	}
	p.reads++
	return p, nil
}

func (s *packSet) release(p *packFile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.reads--; p.reads == 0 && p.gone {
		p.f.Close()
	}
}

// read returns the block with multihash h whose record is at l, read
// into buf when it has room, checked (verify.go): by its sum where the
// index has one, else by h's hash function; thorough, by both.
func (s *packSet) read(l loc, h mh.Multihash, buf []byte, thorough bool) ([]byte, error) {
	p, err := s.acquire(l.pack)
	if err != nil {
		return nil, err
	}
	defer s.release(p)
	var data []byte
	switch l.kind {
	case kindBlock:
		data, err = readRecord(p, l, h, buf)
	case kindRef:
		// Checked by readRef; an unavailable one may have a copy or a
		// newer reference beside it (nocopy.go).
		if data, err = readRef(p, l, h, buf, thorough); errors.Is(err, ErrUnavailable) {
			return s.readOther(l, h, buf, thorough, err)
		}
		return data, err
	default:
		err = fmt.Errorf("pack %s at %d: a record of kind %d, which this version cannot read", l.pack, l.off, l.kind)
	}
	if err != nil {
		return nil, err
	}
	if err := l.check(h, data, thorough); err != nil {
		return nil, fmt.Errorf("pack %s at %d: %w", l.pack, l.off, err)
	}
	return data, nil
}

// withSum is l with its block's sum, computed where the index has none
// (a version 1 idx's entry) from the block checked by its hash. A
// corrupt block keeps no sum: its reads go on reporting it.
func (s *packSet) withSum(l loc) (loc, error) {
	if l.sum != 0 || l.kind != kindBlock {
		return l, nil
	}
	h, err := s.recordHash(l)
	if err != nil {
		return l, err
	}
	data, err := s.read(l, h, nil, false)
	switch {
	case errors.Is(err, ErrCorrupt):
		return l, nil
	case err != nil:
		return l, err
	}
	l.sum = xxh3.Hash(data)
	return l, nil
}

// recordHash reads the multihash of the record at l.
func (s *packSet) recordHash(l loc) (mh.Multihash, error) {
	p, err := s.acquire(l.pack)
	if err != nil {
		return nil, err
	}
	defer s.release(p)
	var buf [recordHead + maxMHLen]byte
	n, err := p.f.ReadAt(buf[:], int64(l.off))
	if n < recordHead || n < recordHead+int(buf[4]) {
		return nil, fmt.Errorf("read pack %s at %d: %w", l.pack, l.off, errors.Join(err, ErrCorrupt))
	}
	_, h, err := mh.MHFromBytes(buf[recordHead : recordHead+int(buf[4])])
	// A reference's record holds its descriptor, not the block's bytes.
	if err != nil || (l.kind == kindBlock && binary.LittleEndian.Uint32(buf[:]) != l.size) {
		return nil, fmt.Errorf("pack %s at %d: %w", l.pack, l.off, ErrCorrupt)
	}
	return h, nil
}

// sorted is the set's indexes in name order (stable output for gc).
func (s *packSet) sorted() []*idxFile {
	s.mu.RLock()
	defer s.mu.RUnlock()
	xs := make([]*idxFile, 0, len(s.idx))
	for _, x := range s.idx {
		xs = append(xs, x)
	}
	slices.SortFunc(xs, func(a, b *idxFile) int { return strings.Compare(a.name, b.name) })
	return xs
}

func (s *packSet) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.idx {
		x.close()
	}
	for _, p := range s.files {
		p.f.Close()
	}
	s.idx, s.files = map[string]*idxFile{}, map[string]*packFile{}
}
