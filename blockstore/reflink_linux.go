package blockstore

import (
	"errors"

	"golang.org/x/sys/unix"
)

// cloneRange clones n bytes of src at soff into dst at doff (FICLONERANGE):
// the two files share the extents until either is written.
func cloneRange(dst int, doff int64, src int, soff, n int64) error {
	r := unix.FileCloneRange{Src_fd: int64(src), Src_offset: uint64(soff), Src_length: uint64(n), Dest_offset: uint64(doff)}
	for {
		err := unix.IoctlFileCloneRange(dst, &r)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// fsBlockSize is the block size of the file system dir is on: what a
// clone's offsets and length are multiples of.
func fsBlockSize(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bsize), nil
}
