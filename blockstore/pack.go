package blockstore

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"sort"

	"github.com/cespare/xxhash/v2"
	mh "github.com/multiformats/go-multihash"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/usort"
)

// Blocks live in pack files, many blocks per file, found through index
// files. The layout of <repo>/packs:
//
//	<name>.pack     records, each: u32 data length, u8 multihash length,
//	                multihash, data
//	<name>.idx      where the blocks of one or more packs are:
//	                "ipfs-sync idx 2\n", u32 pack count, the packs' names
//	                (8 bytes each), entries sorted by key, u32 entry count,
//	                u64 xxhash64 of everything before it
//	<name>.idx.new  the index of a pack written by a run that has not made
//	                it durable yet
//
// An entry (40 bytes) is a key (the first 20 bytes of the SHA-256 of the
// block's multihash, so keys are uniform whatever the hash function), a
// u32 whose low 24 bits are the pack's position in the idx's list and
// high 8 bits the record's kind, the record's u32 offset and u32 data
// length, and the u64 xxh3-64 of the block's bytes (its sum; 0: not
// known). Integers are little-endian. Kind 0 is a record whose data is
// the block; a kind this version does not know is an error when read.
//
// The sum is why a read need not hash the block with its CID's function
// (SHA-256, 22 % of serve's CPU): xxh3 catches what disk corruption does
// to a block's bytes, at a tenth of the cost; fsck still checks the CID.
// Indexes of version 1 (32-byte entries, no kind, no sum) are read as
// written; their blocks are checked by their CID's hash, and a merge
// (compact) writes them into a version 2 index with their sums.
//
// Why packs and not one file per block (flatfs, kubo's layout, which
// this store used before): creating a file costs ext4 an inode, a third
// of an import's CPU. Why not pebble: blocks of 256 KiB–1 MiB go through
// its log and compactions (five times slower to write), and no second
// process can read a pebble database while a sync writes it. Measurements:
// docs/benchmarks.md#decisions. Pack and idx files never change once
// named, so serve, export and pull read them without the lock.
//
// Durability: a run appends to new packs and writes each full pack's idx
// as .idx.new; before a ref moves, one syncfs(2) makes packs and indexes
// durable, and only then are the .idx.new renamed (and the directory
// synced). After a crash, the next writer deletes every .idx.new and
// every pack that no .idx names: the previous root's blocks are all in
// named, durable packs.
const (
	packsDir   = "packs"
	idxMagic   = "ipfs-sync idx 2\n"
	idxMagic1  = "ipfs-sync idx 1\n"
	entrySize  = 40
	entrySize1 = 32
	keySize    = 20
	packMax    = 512 << 20 // bytes of records per pack (offsets are u32)
	maxMHLen   = 255
	recordHead = 5 // u32 data length, u8 multihash length
)

type key [keySize]byte

// compare orders keys as bytes; the first eight bytes as one number
// almost always decide.
func (k key) compare(o key) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(k[:8]), binary.BigEndian.Uint64(o[:8])); c != 0 {
		return c
	}
	return bytes.Compare(k[8:], o[8:])
}

// sortEntries sorts a pack's entries by key. Keys are uniform (SHA-256):
// the last pack of a run is sealed after every file is read, on one core,
// and a comparison sort of its ~30,000 entries took 10 ms (usort).
func sortEntries(ents []entry) {
	usort.SortFunc(ents, func(e entry) uint16 { return binary.BigEndian.Uint16(e.key[:2]) }, func(a, b entry) int { return a.key.compare(b.key) })
}

func keyOf(h mh.Multihash) (k key) {
	sum := sha256.Sum256(h)
	copy(k[:], sum[:])
	return k
}

// A record's kind says what its data is.
const (
	kindBlock uint8 = 0 // the block itself
	packBits        = 24
	maxPacks        = 1 << packBits
)

// loc is where a block's record is.
type loc struct {
	pack string
	kind uint8
	off  uint32
	size uint32 // data length
	sum  uint64 // xxh3-64 of the block; 0: not known, check by the CID
}

// entry is a decoded idx entry.
type entry struct {
	key  key
	pack uint32 // the pack's position in its idx's list
	kind uint8
	off  uint32
	size uint32
	sum  uint64
}

func (e *entry) encode(b []byte) {
	copy(b, e.key[:])
	binary.LittleEndian.PutUint32(b[20:], e.pack|uint32(e.kind)<<packBits)
	binary.LittleEndian.PutUint32(b[24:], e.off)
	binary.LittleEndian.PutUint32(b[28:], e.size)
	binary.LittleEndian.PutUint64(b[32:], e.sum)
}

// decodeIdxEntry decodes an entry of esize bytes (entrySize, or
// entrySize1 for a version 1 index, whose records are all blocks).
func decodeIdxEntry(b []byte, esize int) (e entry) {
	copy(e.key[:], b)
	e.pack = binary.LittleEndian.Uint32(b[20:])
	e.off = binary.LittleEndian.Uint32(b[24:])
	e.size = binary.LittleEndian.Uint32(b[28:])
	if esize == entrySize {
		e.kind = uint8(e.pack >> packBits)
		e.pack &= maxPacks - 1
		e.sum = binary.LittleEndian.Uint64(b[32:])
	}
	return e
}

// loc is where e's record is; pack names it.
func (e *entry) loc(pack string) loc {
	return loc{pack: pack, kind: e.kind, off: e.off, size: e.size, sum: e.sum}
}

// idxFile is a loaded idx: its entries stay on disk, mapped into memory
// (read with a pread per lookup where mapping fails); in memory are a
// fanout table (where each key prefix's entries start) and a Bloom filter,
// which answers most misses (every new block a sync writes is one)
// without reading the file. The mapping spares serve a system call per
// block it reads: a file of a few KiB took three before.
type idxFile struct {
	name    string
	packs   []string
	f       *os.File
	m       []byte // the file, mapped; nil: not
	esize   int    // bytes per entry: entrySize, entrySize1 in a version 1 idx
	entries int64  // file offset of the first entry
	count   int
	fanBits uint
	fanout  []uint32
	bloom   []uint64
}

func entriesAt(npacks int) int64 { return int64(len(idxMagic) + 4 + 8*npacks) }

// loadIdx reads and checks the idx at path.
func loadIdx(path string) (*idxFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	x, err := readIdx(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("index %s: %w", path, err)
	}
	x.attach(f)
	return x, nil
}

// attach gives x its file f, mapped where the system allows.
func (x *idxFile) attach(f *os.File) {
	x.name, x.f = filepath.Base(f.Name()), f
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		if m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED); err == nil {
			x.m = m
		}
	}
}

// spreadFanout has the slot of each prefix without entries end where the
// entries of the prefix before it end; only those with entries were set.
func (x *idxFile) spreadFanout() {
	for i := 1; i < len(x.fanout); i++ {
		x.fanout[i] = max(x.fanout[i], x.fanout[i-1])
	}
}

// close lets the idx go; no lookup may be running (they hold packSet.mu).
func (x *idxFile) close() {
	if x.m != nil {
		unix.Munmap(x.m)
		x.m = nil
	}
	x.f.Close()
}

// bucket is the entries whose keys have the fanout prefix p.
func (x *idxFile) bucket(p uint32) ([]byte, error) {
	lo, hi := int64(x.fanout[p])*int64(x.esize), int64(x.fanout[p+1])*int64(x.esize)
	if x.m != nil {
		return x.m[x.entries+lo : x.entries+hi], nil
	}
	buf := make([]byte, hi-lo)
	if _, err := x.f.ReadAt(buf, x.entries+lo); err != nil {
		return nil, fmt.Errorf("read index %s: %w", x.name, err)
	}
	return buf, nil
}

var errBadIdx = errors.New("damaged (does not match its checksum)")

func readIdx(f *os.File) (*idxFile, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	h := xxhash.New()
	r := bufio.NewReaderSize(io.TeeReader(io.LimitReader(f, st.Size()-8), h), 1<<16)
	head := make([]byte, len(idxMagic)+4)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, errBadIdx
	}
	x := &idxFile{}
	switch string(head[:len(idxMagic)]) {
	case idxMagic:
		x.esize = entrySize
	case idxMagic1:
		x.esize = entrySize1
	default:
		return nil, errBadIdx
	}
	npacks := int(binary.LittleEndian.Uint32(head[len(idxMagic):]))
	x.entries = entriesAt(npacks)
	n := (st.Size() - x.entries - 12) / int64(x.esize)
	if npacks > 1<<20 || n < 0 || x.entries+n*int64(x.esize)+12 != st.Size() {
		return nil, errBadIdx
	}
	var name [8]byte
	for range npacks {
		if _, err := io.ReadFull(r, name[:]); err != nil {
			return nil, errBadIdx
		}
		x.packs = append(x.packs, hex.EncodeToString(name[:]))
	}
	x.count = int(n)
	x.fanBits = fanBits(x.count)
	x.fanout = make([]uint32, 1<<x.fanBits+1)
	x.bloom = make([]uint64, bloomWords(x.count))
	b := make([]byte, x.esize)
	var prev key
	for i := range x.count {
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, errBadIdx
		}
		e := decodeIdxEntry(b, x.esize)
		if (i > 0 && string(e.key[:]) < string(prev[:])) || int(e.pack) >= npacks {
			return nil, errBadIdx
		}
		prev = e.key
		x.fanout[x.prefix(e.key)+1] = uint32(i + 1)
		x.bloomAdd(e.key)
	}
	x.spreadFanout()
	var tail [12]byte
	if _, err := io.ReadFull(r, tail[:4]); err != nil || binary.LittleEndian.Uint32(tail[:4]) != uint32(x.count) {
		return nil, errBadIdx
	}
	if _, err := f.ReadAt(tail[4:], st.Size()-8); err != nil || binary.LittleEndian.Uint64(tail[4:]) != h.Sum64() {
		return nil, errBadIdx
	}
	return x, nil
}

// fanBits sizes the fanout so that a lookup reads about 16 entries.
func fanBits(n int) uint {
	if n < 32 {
		return 0
	}
	return min(uint(bits.Len(uint(n/16))), 22)
}

func (x *idxFile) prefix(k key) uint32 {
	if x.fanBits == 0 {
		return 0
	}
	return binary.BigEndian.Uint32(k[:4]) >> (32 - x.fanBits)
}

// The Bloom filter has 16 bits per entry and 4 probes (a false positive
// in about 0.2 % of misses), taken from the key, which is already a hash.
func bloomWords(n int) int {
	w := 1
	for w*64 < n*16 {
		w *= 2
	}
	return w
}

func (x *idxFile) bloomAdd(k key) {
	m := uint32(len(x.bloom)*64 - 1)
	for i := 4; i < keySize; i += 4 {
		bit := binary.LittleEndian.Uint32(k[i:]) & m
		x.bloom[bit/64] |= 1 << (bit % 64)
	}
}

func (x *idxFile) maybe(k key) bool {
	m := uint32(len(x.bloom)*64 - 1)
	for i := 4; i < keySize; i += 4 {
		bit := binary.LittleEndian.Uint32(k[i:]) & m
		if x.bloom[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

// find looks k up.
func (x *idxFile) find(k key) (loc, bool, error) {
	if x.count == 0 || !x.maybe(k) {
		return loc{}, false, nil
	}
	p := x.prefix(k)
	if x.fanout[p] == x.fanout[p+1] {
		return loc{}, false, nil
	}
	buf, err := x.bucket(p)
	if err != nil {
		return loc{}, false, err
	}
	es := x.esize
	n := len(buf) / es
	i := sort.Search(n, func(i int) bool { return string(buf[i*es:i*es+keySize]) >= string(k[:]) })
	if i == n || string(buf[i*es:i*es+keySize]) != string(k[:]) {
		return loc{}, false, nil
	}
	e := decodeIdxEntry(buf[i*es:], es)
	return e.loc(x.packs[e.pack]), true, nil
}

// each calls fn for every entry in key order.
func (x *idxFile) each(fn func(e entry, pack string) error) error {
	c := newCursor(x)
	for c.next() {
		if err := fn(c.e, x.packs[c.e.pack]); err != nil {
			return err
		}
	}
	return c.err
}

// idxWriter streams a (version 2) idx to a file; entries must come in
// key order.
type idxWriter struct {
	f     *os.File
	w     *bufio.Writer
	h     *xxhash.Digest
	packs map[string]uint32
	n     uint32
	last  key
	// lastCopied: an entry for last is a copy, not a reference.
	lastCopied bool
	// x, when not nil, is the idx being written, indexed as entries are
	// added (see loaded).
	x *idxFile
}

func newIdxWriter(path string, packs []string) (*idxWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	iw := &idxWriter{f: f, h: xxhash.New(), packs: map[string]uint32{}}
	iw.w = bufio.NewWriterSize(io.MultiWriter(f, iw.h), 1<<16)
	iw.w.WriteString(idxMagic)
	iw.w.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(packs))))
	for i, p := range packs {
		name, err := hex.DecodeString(p)
		if err != nil || len(name) != 8 {
			f.Close()
			return nil, fmt.Errorf("bad pack name %q", p)
		}
		iw.w.Write(name)
		iw.packs[p] = uint32(i)
	}
	return iw, nil
}

// dup reports whether add would drop an entry for k.
// A key may have several references (nocopy.go: one per file that holds
// the block, and those whose file changed, until gc); a copy makes any
// later entry for its key redundant.
func (iw *idxWriter) dup(k key) bool { return iw.n > 0 && k == iw.last && iw.lastCopied }

// add appends an entry; one for the key of a copy added before is
// dropped.
func (iw *idxWriter) add(k key, l loc) {
	if iw.dup(k) {
		return
	}
	if k != iw.last || iw.n == 0 {
		iw.lastCopied = false
	}
	iw.lastCopied = iw.lastCopied || l.kind != kindRef
	e := entry{key: k, pack: iw.packs[l.pack], kind: l.kind, off: l.off, size: l.size, sum: l.sum}
	var b [entrySize]byte
	e.encode(b[:])
	iw.w.Write(b[:])
	if iw.x != nil {
		iw.x.fanout[iw.x.prefix(k)+1] = iw.n + 1
		iw.x.bloomAdd(k)
	}
	iw.n++
	iw.last = k
}

// indexAs has the writer index what it writes, for about n entries, so
// that loaded can hand the idx over without reading it back.
func (iw *idxWriter) indexAs(n int) {
	iw.x = &idxFile{esize: entrySize, entries: entriesAt(len(iw.packs)), fanBits: fanBits(n), packs: make([]string, len(iw.packs))}
	for p, i := range iw.packs {
		iw.x.packs[i] = p
	}
	iw.x.fanout = make([]uint32, 1<<iw.x.fanBits+1)
	iw.x.bloom = make([]uint64, bloomWords(n))
}

// loaded is the idx a finished writer wrote at path, as loadIdx would
// give it (its fanout and Bloom filter may be sized for the n indexAs was
// told): what was just written is not read back and checked again.
func (iw *idxWriter) loaded(path string) (*idxFile, error) {
	x := iw.x
	x.count = int(iw.n)
	x.spreadFanout()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	x.attach(f)
	return x, nil
}

// finish writes the trailer and closes the file; with durable, it is
// fsynced first.
func (iw *idxWriter) finish(durable bool) error {
	iw.w.Write(binary.LittleEndian.AppendUint32(nil, iw.n))
	err := iw.w.Flush()
	if err == nil {
		_, err = iw.f.Write(binary.LittleEndian.AppendUint64(nil, iw.h.Sum64()))
	}
	if err == nil && durable {
		err = iw.f.Sync()
	}
	if cerr := iw.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(iw.f.Name())
		return fmt.Errorf("write index %s: %w", iw.f.Name(), err)
	}
	return nil
}

// readRecord reads the record of kind 0 at l, the block with multihash
// h, into buf (a new buffer when it has too little room) and returns its
// data, checking the record's head: its length and multihash.
func readRecord(p *packFile, l loc, h mh.Multihash, buf []byte) ([]byte, error) {
	n := recordHead + len(h) + int(l.size)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if !p.readCached(buf, int64(l.off)) {
		if _, err := p.f.ReadAt(buf, int64(l.off)); err != nil {
			if errors.Is(err, io.EOF) {
				err = ErrCorrupt
			}
			return nil, fmt.Errorf("read pack %s at %d: %w", l.pack, l.off, err)
		}
	}
	if binary.LittleEndian.Uint32(buf) != l.size || int(buf[4]) != len(h) || string(buf[recordHead:recordHead+len(h)]) != string(h) {
		return nil, fmt.Errorf("pack %s at %d: %w", l.pack, l.off, ErrCorrupt)
	}
	return buf[recordHead+len(h):], nil
}
