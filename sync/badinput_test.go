package sync

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/chunker"
)

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		setup   func(t *testing.T, src string) func(chunker.Source) (chunker.File, error)
		wantErr error  // errors.Is target; nil means success
		wantMsg string // substring of the error
		moved   bool   // the ref advances
	}{
		{
			name: "unreadable file fails the run and moves nothing",
			setup: func(t *testing.T, src string) func(chunker.Source) (chunker.File, error) {
				return func(s chunker.Source) (chunker.File, error) {
					if strings.HasSuffix(s.Path, "a/d.deb") {
						return nil, &os.PathError{Op: "open", Path: s.Path, Err: syscall.EIO}
					}
					return chunker.OpenAt(s)
				}
			},
			wantErr: syscall.EIO, wantMsg: "a/d.deb",
		},
		{
			name: "FIFO is skipped with a warning",
			setup: func(t *testing.T, src string) func(chunker.Source) (chunker.File, error) {
				if err := syscall.Mkfifo(filepath.Join(src, "a/fifo"), 0o644); err != nil {
					t.Skip("mkfifo:", err)
				}
				return nil
			},
			wantErr: ErrPartial, moved: true,
		},
		{
			name: "file deleted after the listing is left out",
			setup: func(t *testing.T, src string) func(chunker.Source) (chunker.File, error) {
				return func(s chunker.Source) (chunker.File, error) {
					if strings.HasSuffix(s.Path, "e.txt") {
						os.Remove(s.Path)
					}
					return chunker.OpenAt(s)
				}
			},
			moved: true,
		},
		{
			name: "file growing once while read is read again",
			setup: func(t *testing.T, src string) func(chunker.Source) (chunker.File, error) {
				grown := false
				return func(s chunker.Source) (chunker.File, error) {
					f, err := chunker.OpenAt(s)
					if err == nil && !grown && strings.HasSuffix(s.Path, "e.txt") {
						grown = true
						return &changingFile{File: f, t: t, path: s.Path}, nil
					}
					return f, err
				}
			},
			moved: true,
		},
		{
			name: "file that keeps changing fails the run",
			setup: func(t *testing.T, src string) func(chunker.Source) (chunker.File, error) {
				return func(s chunker.Source) (chunker.File, error) {
					f, err := chunker.OpenAt(s)
					if err == nil && strings.HasSuffix(s.Path, "e.txt") {
						return &changingFile{File: f, t: t, path: s.Path}, nil
					}
					return f, err
				}
			},
			wantErr: chunker.ErrChanged, wantMsg: "e.txt",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := incTree(t)
			store, err := blockstore.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			opts := Options{Src: src, Name: "bad", Profile: incProfile(t, "mtime,mode"), Workers: 1}
			if _, err := Run(ctx, store, opts); err != nil {
				t.Fatal(err)
			}
			// Change the files the cases read, so the quick check opens them.
			appendTo(t, filepath.Join(src, "a/d.deb"))
			appendTo(t, filepath.Join(src, "e.txt"))
			opts.Open = tc.setup(t, src)
			var warned []string
			opts.Warn = func(p string, err error) { warned = append(warned, p) }
			_, err = Run(ctx, store, opts)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("error %q does not name %q", err, tc.wantMsg)
			}
			if errors.Is(tc.wantErr, ErrPartial) && len(warned) == 0 {
				t.Fatal("skip without a warning")
			}
			ref, _, err := store.Ref("bad")
			if err != nil {
				t.Fatal(err)
			}
			if moved := len(ref.History) == 2; moved != tc.moved {
				t.Fatalf("ref moved: %v, want %v", moved, tc.moved)
			}
		})
	}
}

// changingFile appends to the file on disk at its first read: after the
// importer took its stat, as a writer racing the read would.
type changingFile struct {
	chunker.File
	t       *testing.T
	path    string
	changed bool
}

func (c *changingFile) Read(p []byte) (int, error) {
	if !c.changed {
		c.changed = true
		appendTo(c.t, c.path)
	}
	return c.File.Read(p)
}

func appendTo(t *testing.T, p string) {
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("more"))
	f.Close()
}

// TestSecondWriterRefused checks the repository lock.
func TestSecondWriterRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := blockstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := blockstore.Open(dir); !errors.Is(err, blockstore.ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
}
