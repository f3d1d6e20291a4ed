package pull

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
	"time"

	"github.com/ipfs/boxo/files"
	"github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// Records are encoded as: uvarint path length, path, uvarint CID length,
// CID, type, varint size, varint mtime (ns), uvarint mode, and for a
// directory varint ctime (ns).
func encodeRecord(r record) []byte {
	var cb []byte
	if r.Cid.Defined() {
		cb = r.Cid.Bytes()
	}
	b := make([]byte, 0, len(r.Path)+len(cb)+32)
	b = binary.AppendUvarint(b, uint64(len(r.Path)))
	b = append(b, r.Path...)
	b = binary.AppendUvarint(b, uint64(len(cb)))
	b = append(b, cb...)
	var mtime int64 // a tombstone's stat is zero
	if r.Cid.Defined() {
		mtime = r.Local.MTime.UnixNano()
	}
	b = append(b, byte(r.Local.Type))
	b = binary.AppendVarint(b, r.Local.Size)
	b = binary.AppendVarint(b, mtime)
	b = binary.AppendUvarint(b, uint64(unixPerms(r.Local.Mode)))
	if r.Local.CTime != 0 {
		b = binary.AppendVarint(b, r.Local.CTime)
	}
	return b
}

func decodeRecord(b []byte) (record, bool) {
	var r record
	str := func() ([]byte, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, false
		}
		s := b[k : k+int(n)]
		b = b[k+int(n):]
		return s, true
	}
	p, ok := str()
	if !ok {
		return r, false
	}
	r.Path = string(p)
	cb, ok := str()
	if !ok {
		return r, false
	}
	if len(cb) == 0 {
		return r, true // a tombstone: the path is gone
	}
	c, err := cid.Cast(cb)
	if err != nil || len(b) < 1 {
		return r, false
	}
	r.Cid = c
	r.Local.Type = metadata.Type(b[0])
	b = b[1:]
	var k int
	if r.Local.Size, k = binary.Varint(b); k <= 0 {
		return r, false
	}
	b = b[k:]
	mtime, k := binary.Varint(b)
	if k <= 0 {
		return r, false
	}
	r.Local.MTime = time.Unix(0, mtime).UTC()
	b = b[k:]
	m, k := binary.Uvarint(b)
	if k <= 0 {
		return r, false
	}
	r.Local.Mode = files.UnixPermsToModePerms(uint32(m))
	if b = b[k:]; len(b) > 0 {
		if r.Local.CTime, k = binary.Varint(b); k <= 0 {
			return r, false
		}
	}
	return r, true
}

// A log is a sequence of frames: uvarint length, payload, CRC-32C of the
// payload. Reading stops at the first damaged frame (the tail of a run that
// was killed mid-write) and the file is cut there before appending.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

func appendFrame(b, payload []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(payload)))
	b = append(b, payload...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(payload, crcTable))
}

type logWriter struct {
	mu sync.Mutex
	f  *os.File
	w  *bufio.Writer
	// eager hands every frame to the kernel at once: index records must
	// survive a killed run for the next one to resume.
	eager  bool
	frames int // in the file
	dirfd  int
	dir    string // for messages
	name   string
}

// maxFrame bounds a frame's length as read back, so a damaged length
// cannot make the reader allocate gigabytes.
const maxFrame = 4 << 20

func openLog(dirfd int, dir, name string, each func([]byte)) (*logWriter, error) {
	fd, err := fsat.Open(dirfd, name, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s/%s: %w", dir, name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	br := bufio.NewReaderSize(f, 1<<20)
	var good int64
	frames := 0
	for {
		n, err := binary.ReadUvarint(br)
		if err != nil || n > maxFrame {
			break
		}
		buf := make([]byte, n+4)
		if _, err := io.ReadFull(br, buf); err != nil {
			break
		}
		p := buf[:n]
		if binary.LittleEndian.Uint32(buf[n:]) != crc32.Checksum(p, crcTable) {
			break
		}
		each(p)
		frames++
		good += int64(protowire.SizeVarint(n)) + int64(n) + 4
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("truncate %s/%s: %w", dir, name, err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return &logWriter{f: f, w: bufio.NewWriterSize(f, 64<<10), frames: frames, dirfd: dirfd, dir: dir, name: name}, nil
}

func (l *logWriter) append(payload []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(appendFrame(nil, payload)); err != nil {
		return fmt.Errorf("write %s/%s: %w", l.dir, l.name, err)
	}
	l.frames++
	if l.eager {
		return l.w.Flush()
	}
	return nil
}

// flush hands what was appended to the kernel, so that a killed process
// loses nothing it recorded.
func (l *logWriter) flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Flush()
}

// sync puts what was appended on disk.
func (l *logWriter) sync() error {
	if err := l.flush(); err != nil {
		return err
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("sync %s/%s: %w", l.dir, l.name, err)
	}
	return nil
}

// replace swaps the log for the frames in data (written to a temporary
// name, synced, renamed) and goes on appending to the new file.
func (l *logWriter) replace(data []byte, frames int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := writeFileAt(l.dirfd, l.name, data); err != nil {
		return fmt.Errorf("%s: %w", l.dir, err)
	}
	fd, err := fsat.Open(l.dirfd, l.name, unix.O_WRONLY|unix.O_APPEND|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open %s/%s: %w", l.dir, l.name, err)
	}
	l.f.Close()
	l.f = os.NewFile(uintptr(fd), l.name)
	l.w.Reset(l.f)
	l.frames = frames
	return nil
}

func (l *logWriter) close() {
	l.flush()
	l.f.Close()
}
