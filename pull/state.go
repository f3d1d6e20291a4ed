package pull

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// Pull keeps what it knows about each DEST in the repository, not in
// DEST: DEST must be an exact copy of ROOT (rsync --delete, a web server
// or a sync of DEST must find nothing else there). The state of a DEST is
// the directory statesDir/KEY, KEY a hash of DEST's real path, and it
// names the directory it describes by device, inode and birth time too:
// a directory that takes DEST's place (moved there, restored from a
// backup, made anew) has no state, and its pull is a first pull.
const statesDir = "pulls"

// Files in a state directory.
const (
	stateFile = "state.json" // which DEST; the last root pulled completely
	indexFile = "index"      // path → CID and the stat it was written with
	cacheFile = "blocks"     // directory and file-structure blocks of that root
	lockFile  = "lock"
)

// tmpPrefix starts every temporary name pull creates in DEST. Leftovers of
// an interrupted run are removed on the next one (with or without --delete).
const tmpPrefix = ".ipfs-sync-pull-tmp-"

// record is what the index knows about one path of DEST: the CID pulled
// there and the lstat the entry had right after pull wrote it (as the index
// stores it: Mode only its chmod bits). A record is trusted only while
// lstat still gives exactly that (sameLocal, rsync's quick check), so a
// file changed by hand is fetched again.
type record struct {
	Path  string // relative to DEST, "/"-separated; "" is DEST itself
	Cid   cid.Cid
	Local metadata.Stat
}

// destID is which directory a state describes.
type destID struct {
	Path     string // real (symlinks resolved), absolute
	Dev, Ino uint64
	Birth    int64 // ns; 0 where the filesystem does not keep one
}

// savedState is state.json.
type savedState struct {
	Dest     string `json:"dest"`
	Dev      uint64 `json:"dev"`
	Ino      uint64 `json:"ino"`
	Birth    int64  `json:"birth,omitempty"`
	Root     string `json:"root,omitempty"`
	Previous string `json:"previous,omitempty"`
	// SpecialBits: the records were written with the setuid, setgid and
	// sticky bits ROOT stores; Recheck: a run under the other rule began
	// and did not finish, so some were, some not.
	SpecialBits bool      `json:"special_bits,omitempty"`
	Recheck     bool      `json:"recheck,omitempty"`
	Time        time.Time `json:"time"`
}

func (s savedState) id() destID {
	return destID{Path: s.Dest, Dev: s.Dev, Ino: s.Ino, Birth: s.Birth}
}

// state is DEST's pull state, open for one run: the previous root, the
// index and the block cache as loaded, and both files open for appending,
// so that what this run completes survives an interruption (the next run
// resumes from it). Both files are logs: a run appends what it writes (and
// tombstones for paths no longer in the root), and rewrites a log only when
// more than half of it is dead, so an update costs writes in proportion
// to the change, not to the tree.
type state struct {
	dir   string // the state directory, for messages
	dirfd int
	lock  int
	id    destID
	prev  savedState
	// fresh: no pull is known to have written into this DEST (it has no
	// state, or the state is of another directory that was at its path).
	fresh bool
	// legacy: DEST holds an earlier version's state directory, which the
	// run removes (its index and cache adopted, if this DEST had no state).
	legacy bool

	mu     sync.RWMutex
	index  map[string]*entry
	byCid  map[cid.Cid]string // a file's CID → a path that holds it
	cache  map[cid.Cid]*cached
	indexW *logWriter
	cacheW *logWriter
	// heldBytes: what the files in the index hold, as loaded.
	heldBytes int64
}

// entry is an index record, and whether this run found it still true (or
// wrote it): settle tombstones the others.
type entry struct {
	record
	live atomic.Bool
}

// cached is a block of the cache, and whether this run used it: every
// directory block and HAMT shard of the root is read on each run, so what
// was not used is under no root DEST needs.
type cached struct {
	data []byte
	used atomic.Bool
}

// stateDir is where the repository repo keeps the state of the DEST whose
// real path is dest.
func stateDir(repo, dest string) string {
	sum := sha256.Sum256([]byte(dest))
	return filepath.Join(repo, statesDir, hex.EncodeToString(sum[:16]))
}

// openState opens (creating) the state of the DEST id in the repository
// repo and takes its lock: a second pull into the same DEST is refused.
// destfd is DEST, open, where an earlier version's state may be.
func openState(repo string, id destID, destfd int) (*state, error) {
	dir := stateDir(repo, id.Path)
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return nil, fmt.Errorf("create the repository: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, fmt.Errorf("create pull states in the repository: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	fd, err := fsat.OpenDir(unix.AT_FDCWD, dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	s := &state{dir: dir, dirfd: fd, lock: -1, id: id, index: map[string]*entry{}, byCid: map[cid.Cid]string{}, cache: map[cid.Cid]*cached{}}
	if s.lock, err = fsat.Open(fd, lockFile, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW, 0o600); err != nil {
		s.close()
		return nil, fmt.Errorf("open %s/%s: %w", dir, lockFile, err)
	}
	if err := unix.Flock(s.lock, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		s.close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			// blockstore.ErrLocked gives the documented exit status 4.
			return nil, fmt.Errorf("%w: another pull is writing into this DEST", blockstore.ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := s.load(destfd); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *state) load(destfd int) error {
	var saved savedState
	if data, err := readFileAt(s.dirfd, stateFile); err == nil {
		if json.Unmarshal(data, &saved) != nil {
			saved = savedState{}
		}
	} else if !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("read %s/%s: %w", s.dir, stateFile, err)
	}
	legacy, err := readLegacy(destfd)
	if err != nil {
		return err
	}
	s.legacy = legacy != nil
	if saved.id() == s.id {
		s.prev = saved
	} else {
		// The index describes another directory, or none: this DEST
		// starts with no record of what pull wrote. The cache is kept (its
		// blocks are verified as they are read, whoever wrote them).
		s.fresh = true
		if err := unix.Unlinkat(s.dirfd, indexFile, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("reset %s/%s: %w", s.dir, indexFile, err)
		}
		if legacy != nil {
			if err := s.adopt(destfd, legacy); err != nil {
				return err
			}
		}
	}
	// The two logs are read at once: on a big tree each takes tens of
	// milliseconds, and an update is a few hundred.
	var cacheErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		cacheErr = s.loadCache()
	}()
	defer func() { <-done }()
	s.indexW, err = openLog(s.dirfd, s.dir, indexFile, func(p []byte) {
		if r, ok := decodeRecord(p); !ok {
			return
		} else if r.Cid.Defined() {
			s.index[r.Path] = &entry{record: r}
		} else {
			delete(s.index, r.Path) // a tombstone
		}
	})
	if err != nil {
		return err
	}
	s.indexW.eager = true
	for p, r := range s.index {
		if r.Local.Type == metadata.File {
			s.byCid[r.Cid] = p
			s.heldBytes += r.Local.Size
		}
	}
	if _, own := s.index[legacyStateDir]; own {
		s.legacy = false // an entry of the root pulled, not a state
	}
	<-done
	return cacheErr
}

// save writes state.json: which directory this state describes, and the
// last root pulled into it completely. A first pull saves it before it
// writes anything into DEST, so that a run after an interrupted one knows
// what it wrote.
func (s *state) save() error {
	st := s.prev
	st.Dest, st.Dev, st.Ino, st.Birth = s.id.Path, s.id.Dev, s.id.Ino, s.id.Birth
	st.Time = time.Now().UTC()
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := writeFileAt(s.dirfd, stateFile, append(data, '\n')); err != nil {
		return fmt.Errorf("%s: %w", s.dir, err)
	}
	return nil
}

func (s *state) loadCache() error {
	var err error
	s.cacheW, err = openLog(s.dirfd, s.dir, cacheFile, func(p []byte) {
		n, c, err := cid.CidFromBytes(p)
		if err != nil {
			return
		}
		if len(p) == n {
			delete(s.cache, c) // a tombstone: no directory block is empty
			return
		}
		// The cache may come from an earlier version's state in DEST, which
		// anyone with access to DEST could write: its blocks are verified
		// like fetched ones.
		data := append([]byte(nil), p[n:]...)
		if b, err := blocks.NewBlockWithCid(data, c); err == nil && blockstore.Verify(b) == nil {
			s.cache[c] = &cached{data: data}
		}
	})
	return err
}

// lookup returns the index entry for path, nil if there is none. Mark it
// live (e.live.Store(true)) when DEST still matches it.
func (s *state) lookup(path string) *entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.index[path]
}

// pathOf returns a path whose record holds the file c.
func (s *state) pathOf(c cid.Cid) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.byCid[c]
	return p, ok
}

// put records path as holding r: appended and handed to the kernel at
// once, so a re-run finds it (not synced: after a crash of the machine the
// next run re-checks every record against lstat and block hashes anyway).
func (s *state) put(r record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := &entry{record: r}
	e.live.Store(true)
	s.index[r.Path] = e
	if r.Local.Type == metadata.File {
		s.byCid[r.Cid] = r.Path
	}
	return s.indexW.append(encodeRecord(r))
}

// block returns a cached block, marking it used.
func (s *state) block(c cid.Cid) ([]byte, bool) {
	s.mu.RLock()
	b, ok := s.cache[c]
	s.mu.RUnlock()
	if !ok {
		return nil, false
	}
	b.used.Store(true)
	return b.data, true
}

// has reports whether c is cached (without marking it used).
func (s *state) has(c cid.Cid) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.cache[c]
	return ok
}

// cacheBlock keeps a verified structure block (a directory or HAMT shard)
// for the next run.
func (s *state) cacheBlock(c cid.Cid, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.cache[c]; ok {
		b.used.Store(true)
		return nil
	}
	b := &cached{data: data}
	b.used.Store(true)
	s.cache[c] = b
	return s.cacheW.append(append(c.Bytes(), data...))
}

// settle ends a successful run's logs: tombstones for the paths the root
// no longer has, the cache trimmed to the blocks this run used, each log
// compacted if mostly dead, all on disk. The caller then makes DEST
// durable too before record says the root is pulled.
func (s *state) settle() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, e := range s.index {
		if !e.live.Load() {
			delete(s.index, p)
			if err := s.indexW.append(encodeRecord(record{Path: p})); err != nil {
				return err
			}
		}
	}
	if s.indexW.frames > 2*len(s.index)+1024 {
		var buf []byte
		for _, e := range s.index {
			buf = appendFrame(buf, encodeRecord(e.record))
		}
		if err := s.indexW.replace(buf, len(s.index)); err != nil {
			return err
		}
	}
	if err := s.indexW.sync(); err != nil {
		return err
	}
	dead := 0
	for c, b := range s.cache {
		if !b.used.Load() {
			delete(s.cache, c)
			dead++
			if err := s.cacheW.append(c.Bytes()); err != nil { // a tombstone
				return err
			}
		}
	}
	if dead > 0 && s.cacheW.frames > 2*len(s.cache)+256 {
		var buf []byte
		for c, b := range s.cache {
			buf = appendFrame(buf, append(c.Bytes(), b.data...))
		}
		if err := s.cacheW.replace(buf, len(s.cache)); err != nil {
			return err
		}
	}
	return s.cacheW.sync()
}

// record notes root as the last root pulled into DEST.
func (s *state) record(root cid.Cid) error {
	s.prev.Previous, s.prev.Root = s.prev.Root, root.String()
	return s.save()
}

// held is the bytes of the files the index says pull wrote into DEST.
func (s *state) held() int64 { return s.heldBytes }

func (s *state) close() {
	if s.indexW != nil {
		s.indexW.close()
	}
	if s.cacheW != nil {
		s.cacheW.close()
	}
	if s.lock >= 0 {
		unix.Close(s.lock)
	}
	unix.Close(s.dirfd)
}
