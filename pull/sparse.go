package pull

import (
	"bytes"
	"errors"
	"sync"

	ft "github.com/ipfs/boxo/ipld/unixfs"
	unixfspb "github.com/ipfs/boxo/ipld/unixfs/pb"
	"github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/dagpb"
	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
)

// Sparse files stay sparse. A file is written into a new temporary file,
// so whatever is not written reads as zeros: a leaf whose CID is an
// all-zero chunk's is neither fetched nor written, and a page of zeros in
// data that is written is skipped, leaving a hole; the file is then
// extended to its size. A 5 GiB disk image with a few megabytes in it
// costs those megabytes, on the wire and on disk.

// holePage is the granularity of the holes left in written data: the
// page size, and the block size of most file systems (a smaller hole is
// simply not one).
const holePage = 4096

// zeros is read, never written: a run of zero bytes to compare with.
var zeros [MaxBlockSize]byte

// isZero reports whether b holds only zero bytes. Data that is not
// (nearly all of it) is told by its first byte.
func isZero(b []byte) bool {
	return len(b) == 0 || (b[0] == 0 && bytes.Equal(b, zeros[:len(b)]))
}

// pwriteSparse writes data at off into a file that holds nothing yet in
// that range, except the pages (holePage-aligned in the file) of data that
// are all zeros: those are left as holes. holes reports whether any was.
func pwriteSparse(fd int, data []byte, off int64) (holes bool, err error) {
	// run is the start of the pending stretch of non-zero pages, -1 if none.
	run := -1
	for i := 0; i < len(data); {
		end := min(len(data), i+int(holePage-(off+int64(i))%holePage))
		if !isZero(data[i:end]) {
			if run < 0 {
				run = i
			}
		} else {
			holes = true
			if run >= 0 {
				if err := fsat.PwriteAll(fd, data[run:i], off+int64(run)); err != nil {
					return holes, err
				}
				run = -1
			}
		}
		i = end
	}
	if run >= 0 {
		err = fsat.PwriteAll(fd, data[run:], off+int64(run))
	}
	return holes, err
}

// maxZeroSizes bounds the chunk sizes (per CID prefix) whose all-zero
// CIDs are computed: a file's chunks have one size but for its last, and
// a hostile root with chunks of every size must not cost a hash of zeros
// for each. A zero chunk of a size past the bound is fetched once, seen
// to be zeros, and remembered.
const maxZeroSizes = 16

// zeroLeaves knows the CIDs of all-zero chunks: computed for the sizes
// and CID prefixes a run meets, and learnt from leaves fetched.
type zeroLeaves struct {
	mu    sync.Mutex
	known map[cid.Cid]int64 // the CID of a leaf of so many zeros
	tried map[zeroKey]struct{}
}

type zeroKey struct {
	pre cid.Prefix
	n   int64
}

func newZeroLeaves() *zeroLeaves {
	return &zeroLeaves{known: map[cid.Cid]int64{}, tried: map[zeroKey]struct{}{}}
}

// is reports whether c, a node its parent says holds n bytes of file
// data, is a leaf of n zero bytes. A CID names its bytes: equal to the
// zero chunk's, it is that chunk, whatever a gateway would send for it.
// One of another size is not (the DAG lies; visit says so).
func (z *zeroLeaves) is(c cid.Cid, n int64) bool {
	if n <= 0 || n > MaxBlockSize {
		return false
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if m, ok := z.known[c]; ok {
		return m == n
	}
	k := zeroKey{c.Prefix(), n}
	if _, ok := z.tried[k]; ok || len(z.tried) >= maxZeroSizes {
		return false
	}
	z.tried[k] = struct{}{}
	for _, zc := range zeroLeafCIDs(k.pre, int(n)) {
		z.known[zc] = n
	}
	return z.known[c] == n
}

// has reports whether c is known to be an all-zero leaf.
func (z *zeroLeaves) has(c cid.Cid) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	_, ok := z.known[c]
	return ok
}

// learn notes c as a leaf of n zeros (its block was fetched and checked).
func (z *zeroLeaves) learn(c cid.Cid, n int64) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.known[c] = n
}

// zeroLeafCIDs are the CIDs with prefix pre of a leaf holding n zero
// bytes, in each encoding isLeaf accepts: a raw block, or a dag-pb UnixFS
// File or Raw node as kubo's importer writes them.
func zeroLeafCIDs(pre cid.Prefix, n int) []cid.Cid {
	var encs [][]byte
	switch pre.Codec {
	case cid.Raw:
		encs = append(encs, zeros[:n])
	case cid.DagProtobuf:
		for _, t := range []unixfspb.Data_DataType{ft.TFile, ft.TRaw} {
			tail := dagpb.AppendLeafTail(nil, &dagpb.UnixFS{Type: t, Filesize: uint64(n), Has: dagpb.HasFilesize})
			enc := dagpb.AppendLeafHead(nil, t, n, len(tail))
			enc = append(append(enc, zeros[:n]...), tail...)
			encs = append(encs, enc)
		}
	}
	var out []cid.Cid
	for _, enc := range encs {
		if c, err := pre.Sum(enc); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// copySparse copies the n bytes of the file src to the new file dst, data
// only (SEEK_DATA, SEEK_HOLE): a sparse file copied within DEST (a rename)
// stays as sparse. A file system that cannot tell data from holes gets the
// whole file copied.
func copySparse(dst, src int, n int64) error {
	for off := int64(0); off < n; {
		data, err := unix.Seek(src, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // a hole to the end
		}
		if err != nil {
			return fsat.CopyRange(dst, off, src, off, n-off)
		}
		hole, err := unix.Seek(src, data, unix.SEEK_HOLE)
		if err != nil {
			return fsat.CopyRange(dst, data, src, data, n-data)
		}
		hole = min(hole, n)
		if data >= hole {
			break
		}
		if err := fsat.CopyRange(dst, data, src, data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return unix.Ftruncate(dst, n)
}
