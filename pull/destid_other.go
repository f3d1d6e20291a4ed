//go:build !linux

package pull

// birthTime is 0 where statx(2) is not there: device and inode tell
// directories apart.
func birthTime(int) int64 { return 0 }
