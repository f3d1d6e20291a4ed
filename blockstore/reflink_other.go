//go:build !linux

package blockstore

import "errors"

// cloneRange: this build knows no clone ioctl, so reflinked leaves are
// stored as references and gc copies.
func cloneRange(int, int64, int, int64, int64) error { return errors.ErrUnsupported }

// fsBlockSize is the page size: nothing is cloned here.
func fsBlockSize(string) (int64, error) { return 4096, nil }
