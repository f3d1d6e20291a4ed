package chunker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fastpath"
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
	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprint("fast=", fast), func(t *testing.T) {
			if fast {
				t.Setenv(fastpath.Env, "")
			} else {
				t.Setenv(fastpath.Env, "1")
			}
			cachedReads := true
			for _, size := range []int{7, 4096, 1 << 20} {
				f, err := OpenNoFollow(path)
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
			if _, err := OpenNoFollow(filepath.Join(dir, "link")); !errors.Is(err, unix.ELOOP) {
				t.Fatalf("open of a symlink: %v, want ELOOP", err)
			}
			res, err := (&Importer{Profile: p, DAG: newBlockMap()}).File(t.Context(), path)
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
	}
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
