//go:build !linux

package blockstore

// readCached is Linux's preadv2 with RWF_NOWAIT (packread_linux.go);
// elsewhere every read is a pread.
func (p *packFile) readCached([]byte, int64) bool { return false }
