package blockstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/ipfs/go-cid"
)

// IndexEntry is what the local index remembers of one file of a ref's
// root. It is a cache: an entry is trusted only when its CID equals the
// link the previous root holds for the same path, so a missing, stale or
// corrupt index can only make a run slower, never change its result.
type IndexEntry struct {
	Cid   cid.Cid
	Size  int64
	MTime time.Time
	Mode  fs.FileMode
	XXH   uint64 // xxh3-64 of the content; 0: not known
	// Dev, Ino and CTime (ns) are the file's when its leaves were stored
	// as references to it (sync --nocopy); 0: copied.
	Dev, Ino uint64
	CTime    int64
}

// Index is the file index of one ref. Reads go to the store; writes are
// batched and land with Flush.
type Index struct {
	s      *Store
	prefix string

	mu    sync.Mutex // held alone but for commitMu, as idleMu is (lock order: packWriter)
	batch *pebble.Batch
	n     int
	// commitMu orders the commits of full batches: taken under mu when a
	// batch is handed over (takeLocked), held through its commit, which
	// runs off mu. Committed under mu, a batch of 4,096 entries held the
	// other reader's Put for ~0.2 ms, its core idle meanwhile.
	commitMu sync.Mutex
	// A key and a value are built here, under mu: the batch copies them.
	kbuf, vbuf []byte

	// idle holds iterators of closed DirIndexes for the next Dir: a walk
	// opens one per directory, and a new pebble iterator loads each
	// level's index blocks again where a reused one, moved by SetBounds,
	// keeps what it has loaded. They see the index as it was when each
	// was made, which is all a walk reads: what earlier runs wrote.
	idleMu sync.Mutex
	idle   []*pebble.Iterator
	closed bool
}

// maxIdle bounds the idle iterators: walkers times directory depth.
const maxIdle = 256

// indexPrefix starts every index key: indexPrefix, the ref's hash, "/",
// then the entry's directory, a NUL and its name. The NUL keeps the
// entries of one directory contiguous and in name order, so a walk reads
// a directory's entries with one iterator (DirIndex) instead of a point
// lookup per file. Keys of the earlier layout ("/ipfs-sync/index/" +
// path) are dropped when a writer opens the store (dropOldIndex).
const (
	indexPrefix    = "/ipfs-sync/index1/"
	oldIndexPrefix = "/ipfs-sync/index/"
)

// Index opens the index of the ref called name.
func (s *Store) Index(name string) *Index {
	return &Index{s: s, prefix: indexPrefix + strconv.FormatUint(xxhash.Sum64String(name), 16) + "/"}
}

// DirIndex reads the index entries of one directory in name order. It is
// for one goroutine; Close it when done.
type DirIndex struct {
	ix     *Index
	it     *pebble.Iterator
	prefix []byte
	key    []byte
	at     []byte // the iterator is at the first key >= at (nil: unknown)
}

// Dir opens the entries of the directory at dir (source-relative, "" for
// the top). A store without an index gives an empty DirIndex.
func (ix *Index) Dir(dir string) *DirIndex {
	d := &DirIndex{ix: ix, prefix: []byte(ix.prefix + dir + "\x00")}
	if ix.s.ds == nil {
		return d
	}
	upper := append([]byte(ix.prefix+dir), 1)
	ix.idleMu.Lock()
	if n := len(ix.idle); n > 0 {
		d.it = ix.idle[n-1]
		ix.idle = ix.idle[:n-1]
	}
	ix.idleMu.Unlock()
	if d.it != nil {
		d.it.SetBounds(d.prefix, upper)
		return d
	}
	it, err := ix.s.ds.DB.NewIter(&pebble.IterOptions{LowerBound: d.prefix, UpperBound: upper})
	if err == nil {
		d.it = it
	}
	return d
}

// Find returns the entry of the child called name. Names asked for in
// increasing order (a walk's order) are found by stepping the iterator
// forward from the last one: a seek costs a search of every level of the
// LSM tree, a step a comparison or two, and most steps are none or one
// (only entries the walk no longer asks for lie between).
func (d *DirIndex) Find(name string) (IndexEntry, bool) {
	if d == nil || d.it == nil {
		return IndexEntry{}, false
	}
	d.key = append(append(d.key[:0], d.prefix...), name...)
	found, ok := d.step()
	if !ok {
		found = d.it.SeekGE(d.key) && bytes.Equal(d.it.Key(), d.key)
	}
	d.at, d.key = d.key, d.at // the iterator is at the first key >= d.at
	if !found {
		return IndexEntry{}, false
	}
	v, err := d.it.ValueAndErr()
	if err != nil {
		return IndexEntry{}, false
	}
	e, err := decodeEntry(v)
	return e, err == nil
}

// maxSteps bounds the steps Find takes before it seeks instead.
const maxSteps = 8

// step moves the iterator from the first key >= d.at to the first key >=
// d.key when d.key is beyond d.at, within maxSteps; ok is false when it
// did not, and found says whether that key is d.key.
func (d *DirIndex) step() (found, ok bool) {
	if d.at == nil || bytes.Compare(d.key, d.at) <= 0 {
		return false, false
	}
	for range maxSteps {
		if !d.it.Valid() {
			return false, true
		}
		if c := bytes.Compare(d.it.Key(), d.key); c >= 0 {
			return c == 0, true
		}
		d.it.Next()
	}
	return false, false
}

// Blocks returns the directory's blocks as PutDir recorded them, valid
// until the next Find. They are a copy kept beside the entries so the walk
// reads a directory's previous version with the same iterator instead of
// opening its block files; the caller checks them against the CID the
// previous root links there.
func (d *DirIndex) Blocks() ([][]byte, bool) {
	if d == nil || d.it == nil {
		return nil, false
	}
	found := d.it.SeekGE(d.prefix) && bytes.Equal(d.it.Key(), d.prefix)
	d.at = append(d.at[:0], d.prefix...)
	if !found {
		return nil, false
	}
	v, err := d.it.ValueAndErr()
	if err != nil {
		return nil, false
	}
	var out [][]byte
	for len(v) > 0 {
		n, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < n {
			return nil, false
		}
		out = append(out, v[k:k+int(n)])
		v = v[k+int(n):]
	}
	return out, len(out) > 0
}

// Close hands the iterator back for the next Dir.
func (d *DirIndex) Close() {
	if d == nil || d.it == nil {
		return
	}
	ix := d.ix
	ix.idleMu.Lock()
	if !ix.closed && len(ix.idle) < maxIdle {
		ix.idle = append(ix.idle, d.it)
		d.it = nil
	}
	ix.idleMu.Unlock()
	if d.it != nil {
		d.it.Close()
	}
}

// Close closes the idle iterators (pebble refuses to close a store with
// iterators open); DirIndexes closed later close their own.
func (ix *Index) Close() {
	ix.idleMu.Lock()
	idle := ix.idle
	ix.idle, ix.closed = nil, true
	ix.idleMu.Unlock()
	for _, it := range idle {
		it.Close()
	}
}

// dropOldIndex removes index keys of the earlier layout, once.
func (s *Store) dropOldIndex() error {
	lo, hi := []byte(oldIndexPrefix), []byte("/ipfs-sync/index0")
	it, err := s.ds.DB.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	old := it.First()
	if err := it.Close(); err != nil || !old {
		return err
	}
	return s.ds.DB.DeleteRange(lo, hi, pebble.NoSync)
}

// Get returns the entry for the path (relative to the source, slash
// separated); ok is false when there is none or it cannot be decoded.
func (ix *Index) Get(ctx context.Context, path string) (IndexEntry, bool) {
	if ix.s.ds == nil {
		return IndexEntry{}, false
	}
	v, closer, err := ix.s.ds.DB.Get(ix.appendKey(nil, path))
	if err != nil {
		return IndexEntry{}, false
	}
	defer closer.Close()
	e, err := decodeEntry(v) // copies what it keeps
	return e, err == nil
}

// Put records e for path.
func (ix *Index) Put(ctx context.Context, path string, e IndexEntry) error {
	ix.mu.Lock()
	ix.vbuf = appendEntry(ix.vbuf[:0], e)
	full, err := ix.putLocked(ix.appendKey(ix.kbuf[:0], path), ix.vbuf, path)
	ix.mu.Unlock()
	return errors.Join(err, ix.commit(full))
}

// PutDir records the encoded blocks of the directory at dir (source-relative,
// "" for the top) under the key that sorts first among its entries: no
// entry has an empty name.
func (ix *Index) PutDir(ctx context.Context, dir string, blocks [][]byte) error {
	ix.mu.Lock()
	v := ix.vbuf[:0]
	for _, b := range blocks {
		v = binary.AppendUvarint(v, uint64(len(b)))
		v = append(v, b...)
	}
	ix.vbuf = v
	k := append(append(append(ix.kbuf[:0], ix.prefix...), dir...), 0)
	full, err := ix.putLocked(k, v, dir+"/")
	ix.mu.Unlock()
	return errors.Join(err, ix.commit(full))
}

// putLocked batches key and value, which the batch copies; the buffers
// are kept for the next. A batch that is full is handed over, to be
// committed off mu (commit).
func (ix *Index) putLocked(key, value []byte, path string) (*pebble.Batch, error) {
	ix.kbuf = key
	if ix.batch == nil {
		ix.batch = ix.s.ds.DB.NewBatch()
	}
	if err := ix.batch.Set(key, value, nil); err != nil {
		return nil, fmt.Errorf("index %s: %w", path, err)
	}
	ix.n++
	if ix.n >= 4096 {
		return ix.takeLocked(), nil
	}
	return nil, nil
}

// appendKey appends the index key of a source-relative path to b; ""
// (a single-file source) becomes ".", which no walked name can be.
func (ix *Index) appendKey(b []byte, path string) []byte {
	if path == "" {
		path = "."
	}
	dir, name := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir, name = path[:i], path[i+1:]
	}
	b = append(append(append(b, ix.prefix...), dir...), 0)
	return append(b, name...)
}

// takeLocked hands over the batch (nil: none) for commit, taking
// commitMu: batches are committed in the order they were taken.
func (ix *Index) takeLocked() *pebble.Batch {
	b := ix.batch
	ix.batch, ix.n = nil, 0
	ix.commitMu.Lock()
	return b
}

// commit commits a batch takeLocked handed over, and lets commitMu go;
// with nil (none handed over, commitMu not taken) it does nothing.
func (ix *Index) commit(b *pebble.Batch) error {
	if b == nil {
		return nil
	}
	defer ix.commitMu.Unlock()
	err := b.Commit(pebble.NoSync)
	b.Close()
	if err != nil {
		return fmt.Errorf("write index in %s: %w", ix.s.dir, err)
	}
	return nil
}

// Flush writes what is batched, after the commits under way. Durability
// comes with the store's Sync.
func (ix *Index) Flush(context.Context) error {
	ix.mu.Lock()
	b := ix.takeLocked()
	ix.mu.Unlock()
	if b == nil {
		ix.commitMu.Unlock()
		return nil
	}
	return ix.commit(b)
}

// appendEntry appends e's encoding to b.
func appendEntry(b []byte, e IndexEntry) []byte {
	c := e.Cid.KeyString()
	b = binary.AppendUvarint(b, uint64(len(c)))
	b = append(b, c...)
	b = binary.AppendVarint(b, e.Size)
	b = binary.AppendVarint(b, e.MTime.Unix())
	b = binary.AppendUvarint(b, uint64(e.MTime.Nanosecond()))
	b = binary.AppendUvarint(b, uint64(e.Mode))
	b = binary.LittleEndian.AppendUint64(b, e.XXH)
	if e.Dev == 0 && e.Ino == 0 {
		return append(b, contentXXH3)
	}
	b = append(b, contentXXH3Ref)
	b = binary.AppendUvarint(b, e.Dev)
	b = binary.AppendUvarint(b, e.Ino)
	return binary.AppendVarint(b, e.CTime)
}

// contentXXH3 ends an entry whose content hash is xxh3-64. Entries of
// earlier versions end with an xxhash64 and no tag; their hash is not
// compared (the file is chunked when its mtime moves), and the next write
// of the entry renews it.
const contentXXH3 = 1

// contentXXH3Ref is contentXXH3 followed by the device and inode
// (uvarints) and change time (varint) of a file whose leaves are
// references (IndexEntry.Dev).
const contentXXH3Ref = 2

var errBadEntry = errors.New("corrupt index entry")

func decodeEntry(b []byte) (IndexEntry, error) {
	var e IndexEntry
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return e, errBadEntry
	}
	b = b[k:]
	c, err := cid.Cast(b[:n])
	if err != nil {
		return e, errBadEntry
	}
	e.Cid, b = c, b[n:]
	var vals [4]int64
	for i := range vals {
		var k int
		if i == 0 || i == 1 {
			vals[i], k = binary.Varint(b)
		} else {
			var u uint64
			u, k = binary.Uvarint(b)
			vals[i] = int64(u)
		}
		if k <= 0 {
			return e, errBadEntry
		}
		b = b[k:]
	}
	if len(b) > 9 && b[8] == contentXXH3Ref {
		dev, k := binary.Uvarint(b[9:])
		if k <= 0 {
			return e, errBadEntry
		}
		ino, k2 := binary.Uvarint(b[9+k:])
		if k2 <= 0 {
			return e, errBadEntry
		}
		ctime, k3 := binary.Varint(b[9+k+k2:])
		if k3 <= 0 || 9+k+k2+k3 != len(b) {
			return e, errBadEntry
		}
		e.Dev, e.Ino, e.CTime = dev, ino, ctime
	} else if len(b) != 8 && (len(b) != 9 || b[8] != contentXXH3) {
		return e, errBadEntry
	}
	if vals[2] > 999999999 {
		return e, errBadEntry
	}
	e.Size = vals[0]
	e.MTime = time.Unix(vals[1], vals[2]).UTC()
	e.Mode = fs.FileMode(vals[3])
	if len(b) >= 9 {
		e.XXH = binary.LittleEndian.Uint64(b)
	}
	return e, nil
}
