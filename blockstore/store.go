// Package blockstore owns the repository on disk: the embedded block store
// (pebble), the lock that keeps a second writer out, batched block writes,
// and the refs (name → current root, with history). A root is recorded only
// after every block under it has been made durable.
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

// Store is an open repository.
type Store struct {
	dir  string
	ds   *pebbleds.Datastore
	bs   bstore.Blockstore
	lock *os.File
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

// Open opens (creating on first use) the repository at dir and takes its
// exclusive lock; a held lock gives ErrLocked at once.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "refs"), 0o755); err != nil {
		return nil, fmt.Errorf("create repository %s: %w", dir, err)
	}
	lock, err := takeLock(filepath.Join(dir, "lock"))
	if err != nil {
		return nil, err
	}
	// Pebble's own defaults reserve a 64 MiB memtable pair and an 8 MiB
	// cache; that already fits the 300 MiB budget, so only the logger is
	// quietened (pebble logs compactions at info level to stderr).
	opts := &pebble.Options{Logger: quietLogger{}}
	d, err := pebbleds.NewDatastore(filepath.Join(dir, "blocks"), pebbleds.WithPebbleOpts(opts))
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open block store in %s: %w", dir, err)
	}
	bs := bstore.NewBlockstore(d, bstore.WriteThrough(true))
	return &Store{dir: dir, ds: d, bs: bstore.NewIdStore(bs), lock: lock}, nil
}

// Dir is the repository's directory.
func (s *Store) Dir() string { return s.dir }

// Blockstore is the store's blocks, identity CIDs answered inline.
func (s *Store) Blockstore() bstore.Blockstore { return s.bs }

// Sync makes every block written so far durable.
func (s *Store) Sync(ctx context.Context) error {
	if err := s.ds.Sync(ctx, ds.NewKey("/")); err != nil {
		return fmt.Errorf("sync block store in %s: %w", s.dir, err)
	}
	return nil
}

// Close releases the store and its lock.
func (s *Store) Close() error {
	err := s.ds.Close()
	s.lock.Close()
	if err != nil {
		return fmt.Errorf("close block store in %s: %w", s.dir, err)
	}
	return nil
}

func takeLock(path string) (*os.File, error) {
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
	host, _ := os.Hostname()
	_ = f.Truncate(0)
	_, _ = fmt.Fprintf(f, "pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	return f, nil
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)      {}
func (quietLogger) Errorf(f string, a ...any) { fmt.Fprintf(os.Stderr, "pebble: "+f+"\n", a...) }
func (quietLogger) Fatalf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+f+"\n", a...)
	os.Exit(1)
}
