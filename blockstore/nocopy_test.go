package blockstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/chunker"
	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
	"github.com/ipfs-sync/ipfs-sync/metadata"
	"golang.org/x/sys/unix"
)

func TestRefDescRoundTrip(t *testing.T) {
	mtime := time.Unix(1_700_000_000, 123456789).UTC()
	for _, d := range []refDesc{
		{dev: 1, ino: 2, size: 10, mtime: mtime, ctime: 77, off: 0, length: 10, path: "/a"},
		{dev: 1 << 60, ino: 1 << 62, size: 3 << 20, mtime: mtime, off: 1 << 20, length: 1 << 20, head: []byte{1, 2, 3}, tail: bytes.Repeat([]byte{9}, 60), path: "/srv/mirror/" + strings.Repeat("n", 3000)},
		{dev: 5, ino: 6, size: 100, mtime: time.Unix(-5, 7).UTC(), off: 99, length: 1, path: "/pre-epoch"},
	} {
		b, err := d.appendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRef(b)
		if err != nil {
			t.Fatalf("%s: %v", d.path[:min(len(d.path), 20)], err)
		}
		if !got.sameAs(&d) || got.off != d.off || got.length != d.length || !bytes.Equal(got.head, d.head) || !bytes.Equal(got.tail, d.tail) {
			t.Errorf("round trip of %+v gave %+v", d, got)
		}
	}
}

func TestRefDescMalformed(t *testing.T) {
	d := refDesc{dev: 1, ino: 2, size: 10, mtime: time.Unix(5, 0), off: 2, length: 8, head: []byte{1}, tail: []byte{2}, path: "/a/b"}
	good, err := d.appendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func([]byte) []byte{
		"empty":         func([]byte) []byte { return nil },
		"version":       func(b []byte) []byte { b[0] = 9; return b },
		"truncated":     func(b []byte) []byte { return b[:len(b)-1] },
		"trailing byte": func(b []byte) []byte { return append(b, 0) },
		"range past end": func(b []byte) []byte {
			b[53] = 9 // length 9 at offset 2 of a 10-byte file
			return b
		},
		"head too long": func(b []byte) []byte { b[57] = 200; return b },
	} {
		if _, err := decodeRef(mutate(bytes.Clone(good))); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
	long := d
	long.path = strings.Repeat("p", 70000)
	if _, err := long.appendTo(nil); err == nil {
		t.Error("a path over 65535 bytes encoded")
	}
}

// refFixture is a file whose leaves a store holds as references: raw
// leaves of chunk bytes, and one leaf framed as a dag-pb leaf is.
type refFixture struct {
	store  *Store
	path   string
	data   []byte
	leaves []cid.Cid
	blocks [][]byte
}

func newRefFixture(t *testing.T) *refFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	f := &refFixture{path: filepath.Join(dir, "src", "file"), data: bytes.Repeat([]byte("0123456789abcdef"), 4096)}
	if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1_600_000_000, 5).UTC()
	if err := os.Chtimes(f.path, old, old); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := fsat.Lstat(unix.AT_FDCWD, f.path, &st); err != nil {
		t.Fatal(err)
	}
	ms := metadata.FromStatT(&st)
	s, err := Open(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f.store = s
	w := s.NewWriter(false)
	const chunk = 20001 // not a divisor of the file or of its pattern: no two leaves alike
	for off := 0; off < len(f.data); off += chunk {
		n := min(chunk, len(f.data)-off)
		var head, tail []byte
		if off == chunk {
			head, tail = []byte{0x0a, 0x99}, []byte{0x18, 0x01}
		}
		block := append(append(append([]byte{}, head...), f.data[off:off+n]...), tail...)
		c, err := cid.V1Builder{Codec: cid.Raw, MhType: mh.SHA2_256}.Sum(block)
		if err != nil {
			t.Fatal(err)
		}
		at := chunker.LeafAt{Path: f.path, Dev: uint64(st.Dev), Ino: uint64(st.Ino), Size: ms.Size, MTime: ms.MTime, CTime: st.Ctim.Nano(), Off: int64(off), Len: n, Head: head, Tail: tail}
		if err := w.PutLeafRef(ctx, c, block, at); err != nil {
			t.Fatal(err)
		}
		f.leaves, f.blocks = append(f.leaves, c), append(f.blocks, block)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if w.Blocks != int64(len(f.leaves)) {
		t.Fatalf("%d references written for %d leaves", w.Blocks, len(f.leaves))
	}
	return f
}

// TestNoCopyFaults changes a referenced file each way a mirror's files
// change, and checks its blocks then read as unavailable (never other
// bytes), that fsck counts them apart from damage, and that a reader
// opened without the lock sees the same.
func TestNoCopyFaults(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, path string, data []byte)
	}{
		{"unchanged", func(*testing.T, string, []byte) {}},
		{"rewritten in place, same size and mtime", func(t *testing.T, p string, data []byte) {
			fi, _ := os.Stat(p)
			b := bytes.Clone(data)
			b[len(b)-1] ^= 1 // only the last leaf's bytes differ: the change time tells
			write(t, p, b)
			os.Chtimes(p, fi.ModTime(), fi.ModTime())
		}},
		{"appended", func(t *testing.T, p string, data []byte) {
			write(t, p, append(bytes.Clone(data), 'x'))
		}},
		{"truncated", func(t *testing.T, p string, data []byte) {
			if err := os.Truncate(p, int64(len(data)/2)); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced by a copy (rsync)", func(t *testing.T, p string, data []byte) {
			fi, _ := os.Stat(p)
			tmp := p + ".tmp"
			write(t, tmp, data)
			os.Chtimes(tmp, fi.ModTime(), fi.ModTime())
			if err := os.Rename(tmp, p); err != nil {
				t.Fatal(err)
			}
		}},
		{"deleted", func(t *testing.T, p string, _ []byte) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}},
		{"chmod 000", func(t *testing.T, p string, _ []byte) {
			if err := os.Chmod(p, 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"made a directory", func(t *testing.T, p string, _ []byte) {
			os.Remove(p)
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"made a symlink to a copy", func(t *testing.T, p string, data []byte) {
			write(t, p+".real", data)
			os.Remove(p)
			if err := os.Symlink(p+".real", p); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRefFixture(t)
			// A store that read the leaves before the change must see it
			// as a fresh reader does.
			for i, c := range f.leaves {
				if _, err := f.store.Blockstore().Get(ctx, c); err != nil {
					t.Fatalf("leaf %d before the change: %v", i, err)
				}
			}
			tc.change(t, f.path, f.data)
			reader, err := OpenReader(f.store.Dir())
			if err != nil {
				t.Fatal(err)
			}
			defer reader.Close()
			unavail := map[*Store]int{}
			for i, c := range f.leaves {
				for _, s := range []*Store{f.store, reader} {
					b, err := s.Blockstore().Get(ctx, c)
					switch {
					case err == nil:
						if !bytes.Equal(b.RawData(), f.blocks[i]) {
							t.Fatalf("leaf %d: wrong bytes", i)
						}
					case errors.Is(err, ErrUnavailable):
						if !ipld.IsNotFound(err) || !strings.Contains(err.Error(), f.path) {
							t.Errorf("leaf %d: %v: not a not-found naming the file", i, err)
						}
						unavail[s]++
					default:
						t.Fatalf("leaf %d: %v", i, err)
					}
				}
			}
			unavailable := unavail[reader]
			if unavail[f.store] != unavailable {
				t.Errorf("the store that read the leaves before found %d unavailable, a fresh reader %d", unavail[f.store], unavailable)
			}
			switch {
			case tc.name == "unchanged" && unavailable != 0:
				t.Errorf("%d leaves of an unchanged file unavailable", unavailable)
			case tc.name != "unchanged" && unavailable != len(f.leaves):
				t.Errorf("%d of %d leaves unavailable, want all", unavailable, len(f.leaves))
			}
			res, err := f.store.Fsck(ctx, f.leaves, false, func(cid.Cid, string, error) {})
			if err != nil {
				t.Fatal(err)
			}
			if res.Unavailable != int64(unavailable) || res.Corrupt+res.Missing != 0 || f.store.Damaged() {
				t.Errorf("fsck: %+v, damaged %v; want %d unavailable and no damage", res, f.store.Damaged(), unavailable)
			}
		})
	}
}

func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestNoCopyOtherBytes: a reference whose file passes the identity check
// but whose range holds other bytes (here: the range of the next leaf)
// reads as unavailable, on a plain read as on fsck's thorough one.
func TestNoCopyOtherBytes(t *testing.T) {
	ctx := context.Background()
	f := newRefFixture(t)
	var st unix.Stat_t
	if err := fsat.Lstat(unix.AT_FDCWD, f.path, &st); err != nil {
		t.Fatal(err)
	}
	ms := metadata.FromStatT(&st)
	block := []byte("a leaf whose bytes are nowhere in the file, at its first offset")
	c, err := cid.V1Builder{Codec: cid.Raw, MhType: mh.SHA2_256}.Sum(block)
	if err != nil {
		t.Fatal(err)
	}
	w := f.store.NewWriter(false)
	at := chunker.LeafAt{Path: f.path, Dev: uint64(st.Dev), Ino: uint64(st.Ino), Size: ms.Size, MTime: ms.MTime, CTime: st.Ctim.Nano(), Off: 0, Len: len(block)}
	if err := w.PutLeafRef(ctx, c, block, at); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Blockstore().Get(ctx, c); !errors.Is(err, ErrUnavailable) {
		t.Errorf("read: %v, want unavailable", err)
	}
	res, err := f.store.Fsck(ctx, []cid.Cid{c}, false, func(cid.Cid, string, error) {})
	if err != nil || res.Unavailable != 1 {
		t.Errorf("fsck: %+v, %v; want it unavailable", res, err)
	}
}

// TestNoCopyGCKeepsUnavailable: gc keeping roots that are references
// whose file changed (a single-leaf file synced as SRC, say) marks them
// as the leaves they are and keeps them: unavailable, not missing.
func TestNoCopyGCKeepsUnavailable(t *testing.T) {
	ctx := context.Background()
	f := newRefFixture(t)
	if err := os.Truncate(f.path, 10); err != nil {
		t.Fatal(err)
	}
	res, err := f.store.GC(ctx, f.leaves)
	if err != nil {
		t.Fatal(err)
	}
	if res.Kept != int64(len(f.leaves)) || res.Removed != 0 {
		t.Errorf("gc: %+v; want all %d references kept", res, len(f.leaves))
	}
	fsck, err := f.store.Fsck(ctx, f.leaves, false, func(cid.Cid, string, error) {})
	if err != nil || fsck.Unavailable != int64(len(f.leaves)) || fsck.Missing+fsck.Corrupt != 0 {
		t.Errorf("fsck after gc: %+v, %v", fsck, err)
	}
}

func TestRefStart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c, n    int
		head    int
		off     int64
		want    int
		wantPos int // where the file's bytes land, mod pageSize
	}{
		{"a chunk on a page boundary, raw leaf", 1<<20 + 1024, 1 << 20, 0, 1 << 20, 64, 64},
		{"a chunk on a page boundary, dag-pb framing", 1<<20 + 1024, 1<<20 + 20, 14, 2 << 20, 50, 64},
		{"mid-page", 8192, 1000, 14, 4090, 44, 58},
		{"late in a page", 16384, 1000, 100, 4000, 3964, 4064},
		{"framing longer than the room before the page's end", 16384, 1000, 100, 4042, 4006, 10},
		{"no room: from the start", 1000, 1000, 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := refStart(tc.c, tc.n, tc.head, tc.off)
			if got != tc.want {
				t.Fatalf("refStart = %d, want %d", got, tc.want)
			}
			if got+tc.n > tc.c {
				t.Fatalf("block ends at %d, past the buffer's %d", got+tc.n, tc.c)
			}
			if got != 0 && (got+tc.head)%pageSize != tc.wantPos {
				t.Errorf("file bytes land at %d within a page, want %d", (got+tc.head)%pageSize, tc.wantPos)
			}
		})
	}
}
