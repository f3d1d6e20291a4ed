package pull

import (
	"errors"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// removeWritten removes name (rel in DEST), which ROOT no longer has and
// an earlier pull wrote, as far as it is still what pull wrote: a file or
// symlink only if lstat still gives what its record says, a directory
// entry by entry by the same rule, and then itself if that emptied it.
// Whatever it leaves is reported kept; removed says nothing was left.
func (p *puller) removeWritten(dirfd int, name, rel string) (removed bool, err error) {
	ls, err := lstatAt(dirfd, name)
	if err != nil || ls.Type == metadata.None {
		return ls.Type == metadata.None, err
	}
	if strings.HasPrefix(name, tmpPrefix) {
		return true, removeAt(dirfd, name) // a leftover of an interrupted pull
	}
	rec := p.st.lookup(rel)
	switch {
	case rec == nil:
		p.keepForeign(rel)
		return false, nil
	case ls.Type != metadata.Dir:
		if !sameLocal(rec.Local, ls) {
			p.keepForeign(rel) // changed since pull wrote it
			return false, nil
		}
		return true, unix.Unlinkat(dirfd, name, 0)
	}
	fd, err := fsat.OpenDir(dirfd, name)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	if ls.Mode&0o700 != 0o700 {
		// A read-only directory (a root can make one) must be writable to
		// be emptied; if something stays in it, so does its mode.
		if err := unix.Fchmod(fd, unixPerms(ls.Mode)|0o700); err != nil {
			return false, err
		}
		defer func() {
			if !removed {
				unix.Fchmod(fd, unixPerms(ls.Mode))
			}
		}()
	}
	names, err := fsat.ReadNames(fd)
	if err != nil {
		return false, err
	}
	all := true
	for _, n := range names {
		ok, err := p.removeWritten(fd, n, join(rel, n))
		if err != nil {
			return false, err
		}
		all = all && ok
	}
	if !all {
		return false, nil
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return false, err
	}
	return true, nil
}
