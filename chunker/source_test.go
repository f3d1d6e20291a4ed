package chunker

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fastpath"
	"github.com/ipfs-sync/ipfs-sync/internal/fastpath/fastpathtest"
	"github.com/ipfs-sync/ipfs-sync/metadata"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

// A source reads its file whole and in order, in reads of any size, with
// the Linux fast path (preadv2 with RWF_NOWAIT, pread when it must wait)
// and without it (pread only, as on other systems); its stat is the
// file's, a symlink is refused, and an import gives the same CID both
// ways.
func TestSource(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 1<<20+123)
	rand.NewChaCha8([32]byte{1}).Read(data)
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	p := mustProfile(t, profile.V1_2025, profile.Overrides{})
	roots := map[bool]cid.Cid{}
	fastpathtest.BothModes(t, func(t *testing.T, fast bool) {
		cachedReads := true
		for _, size := range []int{7, 4096, 1 << 20} {
			f, err := OpenAt(mustSource(t, path))
			if err != nil {
				t.Fatal(err)
			}
			if noWait := f.(*source).noWait; noWait == fastpath.On() {
				t.Fatalf("opened with noWait %v, the fast paths on: %v", noWait, fastpath.On())
			}
			got, err := io.ReadAll(&sizedReader{f, size})
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("reads of %d bytes: %d bytes (want %d), %v", size, len(got), len(data), err)
			}
			cachedReads = cachedReads && !f.(*source).noWait
			st, err := f.Stat()
			if err != nil || st.Type != metadata.File || st.Size != int64(len(data)) || st.Mode != 0o644 {
				t.Fatalf("stat %+v, %v", st, err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := OpenAt(mustSource(t, filepath.Join(dir, "link"))); !errors.Is(err, unix.ELOOP) {
			t.Fatalf("open of a symlink: %v, want ELOOP", err)
		}
		res, err := (&Importer{Profile: p, DAG: newBlockMap()}).File(t.Context(), mustSource(t, path))
		if err != nil {
			t.Fatal(err)
		}
		roots[fast] = res.Cid
		switch {
		case fast && !fastpath.On():
			t.Skipf("the pread path passed; %s has no preadv2 fast path", runtime.GOOS)
		case fast && !cachedReads:
			t.Skipf("the pread path passed, but not preadv2's: %s refuses RWF_NOWAIT", dir)
		}
	})
	if len(roots) == 2 && roots[true] != roots[false] {
		t.Fatalf("root %s with the fast paths, %s without", roots[true], roots[false])
	}
}

// sizedReader reads at most size bytes at a time.
type sizedReader struct {
	r    io.Reader
	size int
}

func (s *sizedReader) Read(p []byte) (int, error) {
	return s.r.Read(p[:min(len(p), s.size)])
}

// mustSource is the file at path as a Source, with the identity an lstat
// finds there now.
func mustSource(t *testing.T, path string) Source {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return Source{Dir: unix.AT_FDCWD, Name: path, Path: path, Dev: uint64(st.Dev), Ino: uint64(st.Ino)}
}

// OpenAt opens the file the walk listed, in the directory it listed: a
// directory swapped for a symlink since is not followed, a file renamed
// over the listed one, or a FIFO put in its place, is not taken for it
// (the open does not hang on the FIFO); the Importer then reads the file
// now at the name once, as a listing taken now would find it.
func TestOpenAt(t *testing.T) {
	p := mustProfile(t, profile.V1_2025, profile.Overrides{})
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir, outside string) // after the listing
		open   error                                   // OpenAt's, errors.Is
		read   string                                  // what Importer.File imports
		file   error                                   // or its error
	}{
		{name: "unchanged", change: func(*testing.T, string, string) {}, read: "listed"},
		{
			name: "directory swapped for a symlink",
			change: func(t *testing.T, dir, outside string) {
				mustDo(t, os.Rename(dir, dir+".old"))
				mustDo(t, os.Symlink(outside, dir))
			},
			read: "listed",
		},
		{
			name: "file renamed over",
			change: func(t *testing.T, dir, _ string) {
				mustDo(t, os.WriteFile(filepath.Join(dir, "new"), []byte("renamed over"), 0o644))
				mustDo(t, os.Rename(filepath.Join(dir, "f"), filepath.Join(dir, "kept")))
				mustDo(t, os.Rename(filepath.Join(dir, "new"), filepath.Join(dir, "f")))
			},
			open: ErrReplaced, read: "renamed over",
		},
		{
			name: "FIFO put in its place",
			change: func(t *testing.T, dir, _ string) {
				// Kept, so that the FIFO cannot get its inode.
				mustDo(t, os.Rename(filepath.Join(dir, "f"), filepath.Join(dir, "kept")))
				mustDo(t, unix.Mkfifo(filepath.Join(dir, "f"), 0o644))
			},
			open: ErrReplaced, file: ErrNotRegular,
		},
		{
			name: "file removed",
			change: func(t *testing.T, dir, _ string) {
				mustDo(t, os.Remove(filepath.Join(dir, "f")))
			},
			open: fs.ErrNotExist, file: fs.ErrNotExist,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top, outside := t.TempDir(), t.TempDir()
			dir := filepath.Join(top, "pool")
			mustDo(t, os.Mkdir(dir, 0o755))
			mustDo(t, os.WriteFile(filepath.Join(dir, "f"), []byte("listed"), 0o644))
			mustDo(t, os.WriteFile(filepath.Join(outside, "f"), []byte("outside"), 0o644))
			dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			mustDo(t, err)
			defer unix.Close(dfd)
			var st unix.Stat_t
			mustDo(t, unix.Fstatat(dfd, "f", &st, unix.AT_SYMLINK_NOFOLLOW))
			src := Source{Dir: dfd, Name: "f", Path: filepath.Join(dir, "f"), Dev: uint64(st.Dev), Ino: uint64(st.Ino)}
			tc.change(t, dir, outside)

			f, err := OpenAt(src)
			if err == nil {
				f.Close()
			}
			if tc.open == nil && err != nil || tc.open != nil && !errors.Is(err, tc.open) {
				t.Fatalf("OpenAt: %v, want %v", err, tc.open)
			}
			res, err := (&Importer{Profile: p, DAG: newBlockMap()}).File(t.Context(), src)
			checkImported(t, p, res, err, tc.file, tc.read)
		})
	}
}

// With NoLstat the walk knew no identity: OpenAt takes whatever regular
// file is at the name when it opens it, and the Result names that file's
// device and inode (which a --nocopy reference keeps), its size told to
// OnSize once per open.
func TestOpenAtNoLstat(t *testing.T) {
	p := mustProfile(t, profile.V1_2025, profile.Overrides{})
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string) // after the listing
		read   string                         // what Importer.File imports
		file   error                          // or its error
	}{
		{name: "unchanged", change: func(*testing.T, string) {}, read: "listed"},
		{
			name: "file renamed over",
			change: func(t *testing.T, dir string) {
				mustDo(t, os.WriteFile(filepath.Join(dir, "new"), []byte("renamed over"), 0o644))
				mustDo(t, os.Rename(filepath.Join(dir, "f"), filepath.Join(dir, "kept")))
				mustDo(t, os.Rename(filepath.Join(dir, "new"), filepath.Join(dir, "f")))
			},
			read: "renamed over",
		},
		{
			name: "FIFO put in its place",
			change: func(t *testing.T, dir string) {
				mustDo(t, os.Rename(filepath.Join(dir, "f"), filepath.Join(dir, "kept")))
				mustDo(t, unix.Mkfifo(filepath.Join(dir, "f"), 0o644))
			},
			file: ErrNotRegular,
		},
		{
			name:   "file removed",
			change: func(t *testing.T, dir string) { mustDo(t, os.Remove(filepath.Join(dir, "f"))) },
			file:   fs.ErrNotExist,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mustDo(t, os.WriteFile(filepath.Join(dir, "f"), []byte("listed"), 0o644))
			dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			mustDo(t, err)
			defer unix.Close(dfd)
			src := Source{Dir: dfd, Name: "f", Path: filepath.Join(dir, "f"), NoLstat: true}
			tc.change(t, dir)

			var sized []int64
			im := &Importer{Profile: p, DAG: newBlockMap(), OnSize: func(n int64) { sized = append(sized, n) }}
			res, err := im.File(t.Context(), src)
			if !checkImported(t, p, res, err, tc.file, tc.read) {
				return
			}
			var st unix.Stat_t
			mustDo(t, unix.Fstatat(dfd, "f", &st, unix.AT_SYMLINK_NOFOLLOW))
			if res.Dev != uint64(st.Dev) || res.Ino != uint64(st.Ino) {
				t.Errorf("result names device %d inode %d, the file read is %d, %d", res.Dev, res.Ino, st.Dev, st.Ino)
			}
			if len(sized) != 1 || sized[0] != int64(len(tc.read)) {
				t.Errorf("OnSize told %v, want [%d]", sized, len(tc.read))
			}
		})
	}
}

// checkImported checks Importer.File's result: the error wantErr, if
// not nil (false: nothing was imported), else the CID of read.
func checkImported(t *testing.T, p profile.Profile, res Result, err, wantErr error, read string) bool {
	t.Helper()
	if wantErr != nil {
		if !errors.Is(err, wantErr) {
			t.Fatalf("File: %v, want %v", err, wantErr)
		}
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	want, err := (&Importer{Profile: p, DAG: newBlockMap()}).layoutBytes(t, []byte(read), res.Stat)
	mustDo(t, err)
	if !res.Cid.Equals(want) {
		t.Fatalf("imported %s, want the CID of %q (%s)", res.Cid, read, want)
	}
	return true
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// layoutBytes is the root the importer makes of data with st's metadata.
func (im *Importer) layoutBytes(t *testing.T, data []byte, st metadata.Stat) (cid.Cid, error) {
	c, _, err := im.layout(t.Context(), bytes.NewReader(data), st, Source{})
	return c, err
}
