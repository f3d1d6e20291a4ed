package blockstore

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	dshelp "github.com/ipfs/boxo/datastore/dshelp"
	"github.com/ipfs/go-cid"
	flatfs "github.com/ipfs/go-ds-flatfs"
	"golang.org/x/sys/unix"
)

// blockFiles writes new blocks into the flatfs tree itself, in flatfs's
// layout (next-to-last/2 shards, <key>.data), so flatfs reads, lists and
// deletes them as its own.
//
// Why not flatfs's Put: it creates every block under one .temp directory
// and renames it into its shard, stats the target and updates a disk-usage
// counter under a mutex. On a full import that one directory's lock and
// the extra directory operations cost more than writing the data
// (docs/benchmarks.md). Here each block is written as an unnamed file in
// its own shard directory (O_TMPFILE) and linked under its name when
// complete: one directory operation, nothing left behind by a crash, and a
// reader never sees half a block. Where O_TMPFILE is missing, a temporary
// name in the shard directory, linked under the block's name, gives the
// same guarantees.
type blockFiles struct {
	root  string
	shard flatfs.ShardFunc
	dirs  sync.Map    // shard directories known to exist
	plain atomic.Bool // O_TMPFILE or /proc unavailable: temp name + link
}

func newBlockFiles(root string) *blockFiles {
	return &blockFiles{root: root, shard: flatfs.NextToLast(2).Func()}
}

// put stores data as the block c. It reports false when the block was
// already there (written meanwhile by another goroutine or process).
func (f *blockFiles) put(c cid.Cid, data []byte) (bool, error) {
	key := dshelp.MultihashToDsKey(c.Hash()).String()[1:]
	dir := filepath.Join(f.root, f.shard(key))
	if _, ok := f.dirs.Load(dir); !ok {
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return false, err
		}
		f.dirs.Store(dir, struct{}{})
	}
	path := filepath.Join(dir, key+".data")
	if !f.plain.Load() {
		created, err := f.putTmpfile(dir, path, data)
		if !errors.Is(err, errNoTmpfile) {
			return created, err
		}
		f.plain.Store(true)
	}
	return f.putRename(dir, path, data)
}

var errNoTmpfile = errors.New("O_TMPFILE unsupported")

func (f *blockFiles) putTmpfile(dir, path string, data []byte) (bool, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			return false, errNoTmpfile
		}
		return false, &os.PathError{Op: "create block in", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := writeAll(fd, data); err != nil {
		return false, &os.PathError{Op: "write", Path: path, Err: err}
	}
	// Linking an O_TMPFILE by its /proc path needs no privilege
	// (AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
	err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EEXIST):
		return false, nil
	case errors.Is(err, unix.ENOENT):
		// No /proc here.
		return false, errNoTmpfile
	}
	return false, &os.PathError{Op: "link", Path: path, Err: err}
}

func (f *blockFiles) putRename(dir, path string, data []byte) (bool, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	// "put-" is the prefix flatfs itself skips when it lists a shard.
	tmp := filepath.Join(dir, "put-"+hex.EncodeToString(rnd[:]))
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		os.Remove(tmp)
		return false, err
	}
	// link, unlike rename, never replaces: exactly one writer creates it.
	err := os.Link(tmp, path)
	os.Remove(tmp)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrExist):
		return false, nil
	}
	return false, fmt.Errorf("link block into %s: %w", path, err)
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
