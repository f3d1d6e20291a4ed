package fdtable

import "golang.org/x/sys/unix"

// grow makes the table hold n descriptors: F_DUPFD takes the lowest free
// one at or above n-1, which the table must hold. It does nothing where
// the limit on open files is lower, and needs no descriptor of the
// caller's (standard input may be closed under cron).
func grow(n int) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < uint64(n) {
		return
	}
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	if high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, n-1); err == nil {
		unix.Close(high)
	}
	unix.Close(fd)
}
