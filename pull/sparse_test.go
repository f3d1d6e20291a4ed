package pull

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	chunk "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	"github.com/ipfs/boxo/ipld/unixfs/importer/trickle"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
	"golang.org/x/sys/unix"
)

// allocated is the bytes a file holds on disk (du), not its size.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

// writeSparse writes a file of size bytes holding data at each offset of
// parts and holes elsewhere, and returns its content.
func writeSparse(t *testing.T, path string, size int64, parts map[int64][]byte) []byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	content := make([]byte, size)
	for off, p := range parts {
		if _, err := f.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		copy(content[off:], p)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return content
}

// TestPwriteSparse: the pages of zeros in what is written are left as
// holes, and the file reads back as written.
func TestPwriteSparse(t *testing.T) {
	page := func(b byte) []byte { return bytes.Repeat([]byte{b}, holePage) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := []struct {
		name  string
		off   int64
		data  []byte
		holes bool
		alloc int64 // bytes allocated after the write, at most
	}{
		{"all data", 0, cat(page(1), page(2)), false, 2 * holePage},
		{"all zeros", 0, make([]byte, 8*holePage), true, 0},
		{"zeros between data", 0, cat(page(1), make([]byte, 6*holePage), page(2)), true, 2 * holePage},
		{"unaligned offset", 100, cat(page(1), make([]byte, 4*holePage), []byte("tail")), true, 3 * holePage},
		{"zero page ending in a byte", 0, cat(make([]byte, holePage-1), []byte{7}, make([]byte, 3*holePage)), true, holePage},
		{"short", 10, []byte{0, 0, 1}, false, holePage},
		{"empty", 0, nil, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			holes, err := pwriteSparse(int(f.Fd()), c.data, c.off)
			if err != nil {
				t.Fatal(err)
			}
			if holes != c.holes {
				t.Errorf("holes %v, want %v", holes, c.holes)
			}
			if err := f.Truncate(c.off + int64(len(c.data))); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[c.off:], c.data) || !isZero(got[:c.off]) {
				t.Error("the file does not read back as written")
			}
			if a := allocated(t, path); a > c.alloc {
				t.Errorf("%d bytes allocated, want at most %d", a, c.alloc)
			}
		})
	}
}

// TestZeroLeafCIDs: the CID of an all-zero chunk is known without its
// block for each leaf encoding the importer writes (raw, dag-pb File,
// dag-pb Raw in the trickle layout; CIDv0 and v1), and no chunk with data
// passes for one.
func TestZeroLeafCIDs(t *testing.T) {
	v0 := cid.V0Builder{}
	cases := []struct {
		name    string
		builder cid.Builder
		raw     bool
		trickle bool
	}{
		{"raw leaves", cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256}, true, false},
		{"dag-pb leaves, CIDv1", v1, false, false},
		{"dag-pb leaves, CIDv0", v0, false, false},
		{"trickle", v1, false, true},
		{"blake3 raw leaves", cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.BLAKE3}, true, false},
	}
	const chunkSize = 4096
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newDAGStore(t)
			data := make([]byte, 5*chunkSize+100)
			data[2*chunkSize+7] = 1 // one chunk with data, the rest zeros
			params := helpers.DagBuilderParams{Maxlinks: 4, RawLeaves: c.raw, CidBuilder: c.builder, Dagserv: g.ds}
			db, err := params.New(chunk.NewSizeSplitter(bytes.NewReader(data), chunkSize))
			if err != nil {
				t.Fatal(err)
			}
			var nd ipld.Node
			if c.trickle {
				nd, err = trickle.Layout(db)
			} else {
				nd, err = balanced.Layout(db)
			}
			if err != nil {
				t.Fatal(err)
			}
			z := newZeroLeaves()
			var off int64
			var walk func(c cid.Cid)
			walk = func(c cid.Cid) {
				n, err := g.ds.Get(context.Background(), c)
				if err != nil {
					t.Fatal(err)
				}
				if len(n.Links()) > 0 {
					for _, l := range n.Links() {
						walk(l.Cid)
					}
					return
				}
				size := int64(min(chunkSize, len(data)-int(off)))
				want := isZero(data[off : off+size])
				if got := z.is(c, size); got != want {
					t.Errorf("leaf at %d (%s): zero %v, want %v", off, c, got, want)
				}
				off += size
			}
			walk(nd.Cid())
			if off != int64(len(data)) {
				t.Fatalf("leaves hold %d bytes, want %d", off, len(data))
			}
		})
	}
}

// TestSparsePull: a sparse file (a big hole, some data, a hole or data at
// its end) pulled from each source has the content of its source and
// about its allocated size (within one chunk), the chunks of zeros
// neither written nor fetched more than once; copied within DEST (a
// rename) it stays sparse.
func TestSparsePull(t *testing.T) {
	const chunkSize = 256 << 10
	const size = 24 << 20
	cases := []struct {
		name  string
		parts map[int64][]byte
	}{
		{"hole at the end", map[int64][]byte{5<<20 + 3000: randBytes(11, 100<<10)}},
		{"data at the end", map[int64][]byte{1 << 20: randBytes(12, 5000), size - 10: []byte("0123456789")}},
		{"data at the start", map[int64][]byte{0: randBytes(13, 3*chunkSize+17)}},
	}
	for _, s := range sources[:2] {
		for _, c := range cases {
			t.Run(s.name+"/"+c.name, func(t *testing.T) {
				tmp := t.TempDir()
				srcPath := filepath.Join(tmp, "source")
				content := writeSparse(t, srcPath, size, c.parts)
				srcAlloc := allocated(t, srcPath)
				if srcAlloc > size/4 {
					t.Skipf("the file system under %s keeps no holes (%d bytes allocated)", tmp, srcAlloc)
				}
				g := newDAGStore(t)
				img := &spec{kind: 'f', data: content, mode: 0o644, mtime: t0, chunk: chunkSize, layout: 'r'}
				tree := dir(0o755, t0, map[string]*spec{"disk.img": img})
				root := g.build(tree)
				dest := filepath.Join(tmp, "dest")
				res := mustPull(t, s.make(t, g), root, dest)
				checkTree(t, dest, tree)
				got := allocated(t, filepath.Join(dest, "disk.img"))
				t.Logf("source: %d bytes allocated; pulled: %d; fetched %d bytes", srcAlloc, got, res.BytesFetched)
				if got > srcAlloc+chunkSize || got < srcAlloc-chunkSize {
					t.Errorf("pulled file holds %d bytes on disk, its source %d: more than a chunk (%d) apart", got, srcAlloc, chunkSize)
				}
				var dataChunks int64
				for off := 0; off < size; off += chunkSize {
					if !isZero(content[off:min(off+chunkSize, size)]) {
						dataChunks++
					}
				}
				// The zero chunk crosses at most once (a gateway's CAR of the
				// file has each block once), plus the file's inner nodes.
				if limit := (dataChunks+1)*chunkSize + 64<<10; res.BytesFetched > limit {
					t.Errorf("fetched %d bytes for %d chunks of data, more than %d", res.BytesFetched, dataChunks, limit)
				}

				// Renamed: copied within DEST, as sparse.
				tree2 := dir(0o755, t0.Add(time.Hour), map[string]*spec{"disk-renamed.img": img})
				res = mustPull(t, s.make(t, g), g.build(tree2), dest)
				checkTree(t, dest, tree2)
				if res.FilesCopied != 1 {
					t.Errorf("renamed file: %d files copied, want 1", res.FilesCopied)
				}
				if got := allocated(t, filepath.Join(dest, "disk-renamed.img")); got > srcAlloc+chunkSize {
					t.Errorf("renamed file holds %d bytes on disk, its source %d", got, srcAlloc)
				}
			})
		}
	}
}

// TestCopySparse: a copy holds the data of its source and its holes,
// whatever its ends are.
func TestCopySparse(t *testing.T) {
	cases := []struct {
		name  string
		size  int64
		parts map[int64][]byte
	}{
		{"hole at both ends", 8 << 20, map[int64][]byte{3 << 20: randBytes(21, 10_000)}},
		{"data at both ends", 8 << 20, map[int64][]byte{0: []byte("head"), 8<<20 - 4: []byte("tail")}},
		{"no hole", 10_000, map[int64][]byte{0: randBytes(22, 10_000)}},
		{"only a hole", 4 << 20, nil},
		{"empty", 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			content := writeSparse(t, filepath.Join(tmp, "src"), c.size, c.parts)
			src, err := unix.Open(filepath.Join(tmp, "src"), unix.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(src)
			dst, err := unix.Open(filepath.Join(tmp, "dst"), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(dst)
			if err := copySparse(dst, src, c.size); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(tmp, "dst"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, content) {
				t.Errorf("copy differs from its source (%d bytes, want %d)", len(got), len(content))
			}
			if a, want := allocated(t, filepath.Join(tmp, "dst")), allocated(t, filepath.Join(tmp, "src")); a > want+holePage {
				t.Errorf("copy holds %d bytes on disk, its source %d", a, want)
			}
		})
	}
}
