package pull

import (
	"errors"
	"strconv"

	"golang.org/x/sys/unix"
)

// openAnon opens a new file in dirfd that has no name yet (O_TMPFILE);
// -1 where the file system makes none.
func openAnon(dirfd int) int {
	for {
		fd, err := unix.Openat(dirfd, ".", unix.O_RDWR|unix.O_TMPFILE|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1
		}
		return fd
	}
}

// linkAnon gives the file fd (from openAnon) the name name in dirfd,
// which must not exist (EEXIST). AT_EMPTY_PATH takes CAP_DAC_READ_SEARCH;
// without it the file is linked through /proc.
func linkAnon(fd, dirfd int, name string) error {
	err := unix.Linkat(fd, "", dirfd, name, unix.AT_EMPTY_PATH)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPERM) {
		err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), dirfd, name, unix.AT_SYMLINK_FOLLOW)
	}
	return err
}
