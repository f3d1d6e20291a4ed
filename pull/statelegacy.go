package pull

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/internal/fsat"
)

// legacyStateDir is where earlier versions kept the state: in DEST. A
// DEST that has one (and no state in the repository) is adopted: its
// index and cache move to the repository and the directory is removed.
const legacyStateDir = ".ipfs-sync-pull"

// legacyState is what an earlier version's state.json says.
type legacyState struct {
	Root     string `json:"root"`
	Previous string `json:"previous"`
}

// readLegacy reads the state.json of an earlier version's state directory
// in DEST; nil if there is none.
func readLegacy(destfd int) (*legacyState, error) {
	fd, err := fsat.OpenDir(destfd, legacyStateDir)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("DEST %s: %w", legacyStateDir, err)
	}
	defer unix.Close(fd)
	data, err := readFileAt(fd, stateFile)
	if err != nil {
		return nil, nil
	}
	var old legacyState
	if json.Unmarshal(data, &old) != nil || old.Root == "" {
		return nil, nil
	}
	return &old, nil
}

// adopt takes over an earlier version's state in DEST: its index and
// cache are copied here (the logs' format is the same), and its root is
// the previous one.
func (s *state) adopt(destfd int, old *legacyState) error {
	fd, err := fsat.OpenDir(destfd, legacyStateDir)
	if err != nil {
		return fmt.Errorf("DEST %s: %w", legacyStateDir, err)
	}
	defer unix.Close(fd)
	for _, name := range []string{indexFile, cacheFile} {
		if err := copyFileAt(fd, s.dirfd, name); err != nil {
			return fmt.Errorf("adopt DEST's %s/%s: %w", legacyStateDir, name, err)
		}
	}
	s.fresh = false
	// Earlier versions applied the special bits as ROOT stores them.
	s.prev = savedState{Root: old.Root, Previous: old.Previous, SpecialBits: true}
	return nil
}

// copyFileAt replaces name in dst with a copy of name in src (absent in
// src: nothing to do).
func copyFileAt(src, dst int, name string) error {
	in, err := fsat.Open(src, name, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	inf := os.NewFile(uintptr(in), name)
	defer inf.Close()
	tmp := tmpName()
	out, err := fsat.Open(dst, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	outf := os.NewFile(uintptr(out), tmp)
	_, err = io.Copy(outf, inf)
	if cerr := outf.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dst, tmp, dst, name)
	}
	if err != nil {
		unix.Unlinkat(dst, tmp, 0)
	}
	return err
}
