// Package blockstore owns the repository on disk: the blocks (pack files
// with their indexes, pack.go), the file index (pebble), the lock that
// keeps a second writer out, the block writer, and the refs (name →
// current root, with history). A root is recorded only after every block
// under it has been made durable.
package blockstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	bstore "github.com/ipfs/boxo/blockstore"
	ds "github.com/ipfs/go-datastore"
	pebbleds "github.com/ipfs/go-ds-pebble"
)

// ErrLocked means another process holds the repository.
var ErrLocked = errors.New("repository is locked by another process")

// ErrNoRepository means a directory holds no repository (yet): only Open
// creates one.
var ErrNoRepository = errors.New("no repository")

// Exists reports, as nil, that dir holds a repository (in the layout of
// this version or an earlier one); else an error wrapping ErrNoRepository.
func Exists(dir string) error {
	for _, sub := range []string{packsDir, flatfsDir} {
		if _, err := os.Stat(filepath.Join(dir, sub)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%w at %s", ErrNoRepository, dir)
}

// Store is an open repository.
type Store struct {
	dir   string
	packs *packStore
	ds    *pebbleds.Datastore // the file index; nil for readers
	bs    bstore.Blockstore
	lock  *os.File // nil for readers
	temp  bool     // a dry run's empty stand-in, removed on Close
}

// DefaultDir is $XDG_DATA_HOME/ipfs-sync, else ~/.local/share/ipfs-sync.
func DefaultDir() (string, error) {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "ipfs-sync"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no --repo given and no home directory: %w", err)
	}
	return filepath.Join(home, ".local", "share", "ipfs-sync"), nil
}

// Open opens (creating on first use) the repository at dir for writing and
// takes its exclusive lock; a held lock gives ErrLocked at once.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "refs"), 0o755); err != nil {
		return nil, fmt.Errorf("create repository %s: %w", dir, err)
	}
	// The index is a cache (a lost entry only costs a re-read), so it
	// needs no write-ahead log: pebble treats a WAL write failure, such as
	// a full disk, as fatal and panics.
	return openLocked(dir, takeLock, true, &pebble.Options{DisableWAL: true})
}

// openLocked takes the lock with lock, then opens the blocks (to write
// them, with write) and, with index options, the index.
func openLocked(dir string, lock func(string) (*os.File, error), write bool, index *pebble.Options) (*Store, error) {
	lf, err := lock(filepath.Join(dir, "lock"))
	if err != nil {
		return nil, err
	}
	s, err := openBlocks(dir, write)
	if err != nil {
		lf.Close()
		return nil, err
	}
	s.lock = lf
	if write {
		if err := s.migrateFlatfs(); err != nil {
			s.Close()
			return nil, err
		}
	}
	if index != nil {
		// Pebble logs compactions at info level to stderr; only errors matter.
		index.Logger = quietLogger{}
		if s.ds, err = pebbleds.NewDatastore(filepath.Join(dir, "index"), pebbleds.WithPebbleOpts(index)); err != nil {
			s.Close()
			return nil, fmt.Errorf("open index in %s: %w", dir, err)
		}
		if !index.ReadOnly {
			if err := s.dropOldIndex(); err != nil {
				s.Close()
				return nil, fmt.Errorf("open index in %s: %w", dir, err)
			}
		}
	}
	return s, nil
}

// OpenWait is Open, retrying for up to wait while another process holds
// the lock (restic's --retry-lock).
func OpenWait(ctx context.Context, dir string, wait time.Duration) (*Store, error) {
	deadline := time.Now().Add(wait)
	delay := 100 * time.Millisecond
	for {
		s, err := Open(dir)
		if !errors.Is(err, ErrLocked) || time.Now().Add(delay).After(deadline) {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// OpenDryRun opens the repository at dir for a run that writes nothing:
// it takes the lock (so no writer changes the store underneath) but leaves
// every byte of the repository as it was, index included (read-only).
// Where there is no repository yet, it creates none: the run gets an empty
// store in a temporary directory, removed on Close.
func OpenDryRun(dir string) (*Store, error) {
	if _, err := os.Stat(filepath.Join(dir, packsDir)); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, flatfsDir)); err == nil {
			return nil, fmt.Errorf("repository %s is in the layout of an earlier version; a sync without --dry-run converts it", dir)
		}
		tmp, err := os.MkdirTemp("", "ipfs-sync-dry-run-")
		if err != nil {
			return nil, fmt.Errorf("dry run without a repository: %w", err)
		}
		s, err := Open(tmp)
		if err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		s.temp = true
		return s, nil
	}
	var index *pebble.Options
	if _, err := os.Stat(filepath.Join(dir, "index")); err == nil {
		index = &pebble.Options{ReadOnly: true}
	}
	return openLocked(dir, lockFile, false, index)
}

// OpenReader opens an existing repository's blocks and refs for reading,
// without the lock: it works while another process syncs or collects
// garbage (pack.go says why).
func OpenReader(dir string) (*Store, error) {
	if _, err := os.Stat(filepath.Join(dir, packsDir)); err != nil {
		if _, ferr := os.Stat(filepath.Join(dir, flatfsDir)); ferr == nil {
			return nil, fmt.Errorf("repository %s is in the layout of an earlier version; run a sync or gc once to convert it", dir)
		}
		return nil, Exists(dir)
	}
	return openBlocks(dir, false)
}

// openBlocks opens the packs; a writer also clears what an interrupted
// run left there.
func openBlocks(dir string, write bool) (*Store, error) {
	pdir := filepath.Join(dir, packsDir)
	if write {
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return nil, fmt.Errorf("open block store in %s: %w", dir, err)
		}
	}
	ps := &packStore{set: newPackSet(pdir)}
	if write {
		ps.w = newPackWriter(ps.set)
		if err := ps.w.recover(); err != nil {
			ps.set.close()
			return nil, fmt.Errorf("open block store in %s: %w", dir, err)
		}
	} else if _, err := ps.set.load(); err != nil {
		ps.set.close()
		return nil, fmt.Errorf("open block store in %s: %w", dir, err)
	}
	s := &Store{dir: dir, packs: ps}
	s.bs = blockReader{bstore.NewIdStore(ps), s}
	return s, nil
}

// Refresh brings a reader up to the repository: indexes a sync or gc
// wrote since are loaded, and those a gc removed let go, with the packs
// only they named (closed once their last read ends). A reader otherwise
// reloads only when it misses a block, and would go on serving what a gc
// collected from files whose space is then never freed. Writers see their
// own changes; for them it does nothing.
func (s *Store) Refresh() error {
	if s.packs.w != nil {
		return nil
	}
	if _, err := s.packs.set.load(); err != nil {
		return fmt.Errorf("reload block store in %s: %w", s.dir, err)
	}
	return nil
}

// Dir is the repository's directory.
func (s *Store) Dir() string { return s.dir }

// Blockstore is the store's blocks, identity CIDs answered inline; every
// block read is checked (verify.go). It has the store's ReadBlock too.
func (s *Store) Blockstore() bstore.Blockstore { return s.bs }

// Sync makes every block and index entry written so far durable: one
// syncfs(2) of the store's filesystem (packWriter.flush), then the index.
// The index has no write-ahead log, so its entries land on disk when
// pebble flushes them: that flush runs while the packs are made durable,
// rather than after the ref has moved, at Close, where a full import's
// file index took one more serial write and fsync.
func (s *Store) Sync(ctx context.Context) error {
	var flushed <-chan struct{}
	if s.ds != nil {
		var err error
		if flushed, err = s.ds.DB.AsyncFlush(); err != nil {
			return fmt.Errorf("sync index in %s: %w", s.dir, err)
		}
	}
	if s.packs.w != nil {
		if err := s.packs.w.flush(); err != nil {
			return fmt.Errorf("sync block store in %s: %w", s.dir, err)
		}
	}
	if s.ds != nil {
		select {
		case <-flushed:
		case <-ctx.Done():
			return fmt.Errorf("sync index in %s: %w", s.dir, context.Cause(ctx))
		}
		if err := s.ds.Sync(ctx, ds.NewKey("/")); err != nil {
			return fmt.Errorf("sync index in %s: %w", s.dir, err)
		}
	}
	return nil
}

// Close releases the store and its lock.
func (s *Store) Close() error {
	var errs []error
	if s.packs.w != nil {
		s.packs.w.close() // first: its AIO context goes away while the rest closes
	}
	if s.ds != nil {
		errs = append(errs, s.ds.Close())
	}
	s.packs.set.close()
	if s.lock != nil {
		s.lock.Close()
	}
	if s.temp {
		errs = append(errs, os.RemoveAll(s.dir))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close repository %s: %w", s.dir, err)
	}
	return nil
}

func takeLock(path string) (*os.File, error) {
	f, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	_ = f.Truncate(0)
	_, _ = fmt.Fprintf(f, "pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	return f, nil
}

// lockFile takes the exclusive lock without recording who holds it.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (held by %s)", ErrLocked, filepath.Dir(path), strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)      {}
func (quietLogger) Errorf(f string, a ...any) { fmt.Fprintf(os.Stderr, "pebble: "+f+"\n", a...) }
func (quietLogger) Fatalf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+f+"\n", a...)
	os.Exit(1)
}
