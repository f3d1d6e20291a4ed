package pull

import "golang.org/x/sys/unix"

// birthTime is when the directory open as fd was created (statx(2)), 0 if
// its filesystem does not keep it. With the device and inode it tells a
// directory from another made at the same path later, which may get the
// same inode number.
func birthTime(fd int) int64 {
	var stx unix.Statx_t
	if unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_BTIME, &stx) != nil || stx.Mask&unix.STATX_BTIME == 0 {
		return 0
	}
	return stx.Btime.Sec*1e9 + int64(stx.Btime.Nsec)
}
