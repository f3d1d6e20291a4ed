//go:build !linux

package pull

import "errors"

// openAnon: only Linux makes files without a name.
func openAnon(int) int { return -1 }

func linkAnon(int, int, string) error { return errors.ErrUnsupported }
