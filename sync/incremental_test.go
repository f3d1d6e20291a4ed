package sync

import (
	"context"
	"os"
	"path/filepath"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/chunker"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

func incTree(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	old := time.Unix(1_600_000_000, 123)
	for _, p := range []string{"a/b/c.deb", "a/d.deb", "e.txt", "f/g/h/i"} {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("content of "+p), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(full, old, old); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

func incProfile(t *testing.T, metadata string) profile.Profile {
	p, err := profile.New(profile.V1_2025, profile.Overrides{Metadata: &metadata})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUnchangedFilesNotOpened counts opens through the Options.Open hook:
// a second run over an unchanged tree (with old mtimes) opens nothing, and
// a run after one file changed opens exactly that file.
func TestUnchangedFilesNotOpened(t *testing.T) {
	for _, meta := range []string{"mtime,mode", "none"} {
		t.Run(meta, func(t *testing.T) {
			src := incTree(t)
			store, err := blockstore.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			var opens atomic.Int64
			var mu gosync.Mutex
			var opened []string
			opts := Options{Src: src, Profile: incProfile(t, meta), Filter: diff.Filter{Hidden: true},
				Open: func(s chunker.Source) (chunker.File, error) {
					opens.Add(1)
					mu.Lock()
					opened = append(opened, s.Path)
					mu.Unlock()
					return chunker.OpenAt(s)
				}}
			ctx := context.Background()
			first, err := Run(ctx, store, opts)
			if err != nil {
				t.Fatal(err)
			}
			if opens.Load() != 4 {
				t.Fatalf("first run opened %d files, want 4", opens.Load())
			}
			opens.Store(0)
			opened = nil
			second, err := Run(ctx, store, opts)
			if err != nil {
				t.Fatal(err)
			}
			if opens.Load() != 0 || second.Root != first.Root || second.FileChanges.Unchanged != 4 {
				t.Fatalf("unchanged run opened %v, root %s (want %s), %+v", opened, second.Root, first.Root, second.FileChanges)
			}
			changed := filepath.Join(src, "a/d.deb")
			if err := os.WriteFile(changed, []byte("new and longer content"), 0o644); err != nil {
				t.Fatal(err)
			}
			third, err := Run(ctx, store, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(opened) != 1 || opened[0] != changed || third.FileChanges.Modified != 1 || third.FileChanges.Unchanged != 3 {
				t.Fatalf("after one change opened %v, counts %+v", opened, third.FileChanges)
			}
		})
	}
}

// TestRacyRewriteCaught rewrites a file with the same size and puts its
// mtime back, within the racy window of the previous run: the quick check
// would pass, so the file must be re-read.
func TestRacyRewriteCaught(t *testing.T) {
	for _, meta := range []string{"mtime,mode", "none"} {
		t.Run(meta, func(t *testing.T) {
			src := t.TempDir()
			f := filepath.Join(src, "Packages")
			if err := os.WriteFile(f, []byte("version 1"), 0o644); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			store, err := blockstore.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			ctx := context.Background()
			opts := Options{Src: src, Name: "racy", Profile: incProfile(t, meta)}
			if _, err := Run(ctx, store, opts); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, []byte("version 2"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(f, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
			got, err := Run(ctx, store, opts)
			if err != nil {
				t.Fatal(err)
			}
			opts.Full, opts.Name = true, "full"
			want, err := Run(ctx, store, opts)
			if err != nil {
				t.Fatal(err)
			}
			if got.Root != want.Root || got.FileChanges.Modified != 1 {
				t.Fatalf("racy rewrite missed: incremental %s, full %s, %+v", got.Root, want.Root, got.FileChanges)
			}
		})
	}
}

// TestRacyWindowBounds: a file is re-read when its mtime is close to the
// previous run's start or after it, up to SkewWindow past this run's
// start; mtimes in the past and far in the future are trusted unread.
func TestRacyWindowBounds(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name   string
		mtime  time.Time
		reread bool
	}{
		{"a year ago", now.AddDate(-1, 0, 0), false},
		{"now", now, true},
		{"in half an hour", now.Add(SkewWindow / 2), true},
		{"in two days (a generator's publish date)", now.Add(48 * time.Hour), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			f := filepath.Join(src, "pool.deb")
			if err := os.WriteFile(f, []byte("package"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(f, tc.mtime, tc.mtime); err != nil {
				t.Fatal(err)
			}
			store, err := blockstore.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			opts := Options{Src: src, Name: "skew", Profile: incProfile(t, "mtime,mode")}
			first, err := Run(t.Context(), store, opts)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Run(t.Context(), store, opts)
			if err != nil {
				t.Fatal(err)
			}
			if again.Root != first.Root || (again.BytesRead > 0) != tc.reread {
				t.Fatalf("second run read %d bytes (want a re-read: %v), root %s then %s", again.BytesRead, tc.reread, first.Root, again.Root)
			}
		})
	}
}

// TestProgressCountsUnlistedSizes: a first import lstats no file (its
// walk has no previous version to compare with), so each file's size
// reaches the progress as it is opened: at the end every byte read was
// queued.
func TestProgressCountsUnlistedSizes(t *testing.T) {
	store, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	prog := &Progress{}
	sum, err := Run(t.Context(), store, Options{Src: incTree(t), Name: "p", Profile: incProfile(t, "mtime,mode"), Progress: prog})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Bytes == 0 || prog.Queued.Load() != sum.Bytes || prog.Read.Load() != sum.Bytes {
		t.Fatalf("queued %d bytes, read %d, of %d", prog.Queued.Load(), prog.Read.Load(), sum.Bytes)
	}
}

// TestDryRunWritesNothing checks that a dry run lists the changes and
// leaves the ref where it was.
func TestDryRunWritesNothing(t *testing.T) {
	src := incTree(t)
	store, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	opts := Options{Src: src, Name: "dry", Profile: incProfile(t, "mtime,mode")}
	first, err := Run(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "new.deb"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(src, "e.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "a/d.deb"), 0o600); err != nil {
		t.Fatal(err)
	}
	var items []string
	opts.DryRun = true
	opts.Item = func(c Change) { items = append(items, c.String()) }
	if _, err := Run(ctx, store, opts); err != nil {
		t.Fatal(err)
	}
	want := []string{"* / (mtime)", "* a/d.deb (mode)", "- e.txt", "+ new.deb"}
	if len(items) != len(want) {
		t.Fatalf("items %q, want %q", items, want)
	}
	for i := range want {
		if items[i] != want[i] {
			t.Fatalf("items %q, want %q", items, want)
		}
	}
	ref, _, err := store.Ref("dry")
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := ref.Current(); cur.Root != first.Root || len(ref.History) != 1 {
		t.Fatalf("dry run moved the ref: %+v", ref)
	}
}
