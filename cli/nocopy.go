package cli

import (
	"errors"
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/profile"
	"github.com/ipfs-sync/ipfs-sync/sync"
)

// storage is --nocopy's value: a flag that, like kubo's, stands alone
// (--nocopy) and also takes a value (--nocopy=reflink, --nocopy=false),
// which config.json and IPFS_SYNC_NOCOPY give as true, false or reflink.
type storage string

const (
	storeCopy    storage = "false"
	storeRef     storage = "true"
	storeReflink storage = "reflink"
)

func (s *storage) Set(v string) error {
	switch v {
	case "true", "1", "t", "T", "TRUE", "True":
		*s = storeRef
	case "false", "0", "f", "F", "FALSE", "False":
		*s = storeCopy
	case "reflink":
		*s = storeReflink
	default:
		return fmt.Errorf("want true, false or reflink, not %q", v)
	}
	return nil
}

func (s *storage) String() string {
	if s == nil || *s == "" {
		return string(storeCopy)
	}
	return string(*s)
}

// IsBoolFlag lets --nocopy stand without a value (Go's flag package).
func (s *storage) IsBoolFlag() bool { return true }

func nocopyFlags() []ucli.Flag {
	cat := "Storage (see docs/usage.md#storage):"
	return []ucli.Flag{
		&ucli.GenericFlag{Name: "nocopy", Value: new(storage), Usage: "store where each file leaf's bytes are in SRC instead of a copy of them (kubo's flag name; true, false or reflink). A block whose file changed since is unavailable until the next sync", Category: cat},
		&ucli.StringSliceFlag{Name: "copy", Usage: "with --nocopy, copy the files matching `PATTERN` all the same (files rewritten in place: dists/**, */index.json), so older roots keep them", Category: cat},
	}
}

// nocopyOptions reads --nocopy and --copy into opts, for profile p.
func nocopyOptions(c *ucli.Context, p profile.Profile, opts *sync.Options) error {
	mode := storeCopy
	if v, ok := c.Generic("nocopy").(*storage); ok && *v != "" {
		mode = *v
	}
	switch mode {
	case storeCopy:
		if c.IsSet("copy") {
			return usageError{errors.New("--copy is for --nocopy runs (without it every file is copied)")}
		}
		return nil
	case storeReflink:
		opts.Reflink = true
	}
	if p.Trickle || p.ChunkSize() <= 0 {
		return usageError{errors.New("--nocopy needs fixed-size chunks (--chunker size-N) in the balanced layout")}
	}
	opts.NoCopy = true
	for _, pat := range c.StringSlice("copy") {
		r, err := diff.ParseRule(pat, false)
		if err != nil {
			return usageError{fmt.Errorf("--copy: %w", err)}
		}
		opts.Copy = append(opts.Copy, r)
	}
	return nil
}
