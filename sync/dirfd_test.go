package sync

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/chunker"
)

// TestQueuedFilesUnderDescriptorLimit: a first import of many directories
// of one file each queues files from as many directories, each holding its
// directory's descriptor until the file is read. Under a low descriptor
// limit the walk waits for the readers instead of opening past it: every
// directory is read, nothing skipped. (The limit is the process's: this
// test does not run in parallel with others.)
func TestQueuedFilesUnderDescriptorLimit(t *testing.T) {
	src := t.TempDir()
	const dirs = 600
	for i := range dirs {
		d := filepath.Join(src, fmt.Sprintf("d%03d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "f"), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	store, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 256, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &old)
	opts := Options{Src: src, Name: "many", Profile: incProfile(t, "mtime,mode"), Workers: 2,
		Warn: func(p string, err error) { t.Errorf("%s: %v", p, err) },
		// Files read slower than the walk lists them, as from a disk the
		// listings come cached from: the queue fills.
		Open: func(s chunker.Source) (chunker.File, error) {
			time.Sleep(time.Millisecond)
			return chunker.OpenAt(s)
		}}
	sum, err := Run(context.Background(), store, opts)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Files != dirs || sum.Dirs != dirs+1 {
		t.Fatalf("%d files in %d directories, want %d in %d", sum.Files, sum.Dirs, dirs, dirs+1)
	}
}
