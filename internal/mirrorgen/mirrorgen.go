// Package mirrorgen owns the synthetic package mirrors that the tests and
// benchmarks import: it generates a tree shaped like a real mirror host's
// (a Debian archive, a CRAN repository with its huge flat directory, a PyPI
// and an npm mirror), applies publish cycles to it the way those
// repositories change, and describes a tree (stats, fingerprint).
//
// Everything is deterministic: a generated tree (names, sizes, modes,
// nanosecond mtimes, contents) is a pure function of its Config, whatever
// the number of writers; a publish cycle is a pure function of the tree's
// metadata and its seed. File contents are incompressible and no two files
// share any, so block deduplication never flatters an importer.
//
// Nothing here follows a symlink: the walker does not descend into them,
// files are opened with O_NOFOLLOW, parents are checked with lstat before
// a cycle writes below them, and mtimes are set with AT_SYMLINK_NOFOLLOW.
package mirrorgen

import (
	"fmt"
	"strings"
)

// Version names the layout and the generator's arithmetic: a tree cached by
// a benchmark is reused only when it was made by the same Version, so it
// changes whenever a generated tree or a cycle does (TestVersionPinsOutput).
const Version = "mirrorgen-2"

// Preset is the shape of a generated tree.
type Preset struct {
	Name string
	// Files is the approximate number of regular files.
	Files int
	// Bytes is the approximate number of bytes in regular files.
	Bytes int64
	// Flat is the number of entries of cran/src/contrib, the huge flat
	// directory.
	Flat int
	// Big is the number of huge packages, each BigMin..BigMax bytes.
	Big            int
	BigMin, BigMax int64
}

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

// Presets are the sizes the tests and benchmarks use.
var Presets = []Preset{
	{Name: "tiny", Files: 500, Bytes: 50e6, Flat: 150, Big: 1, BigMin: 8 * mib, BigMax: 16 * mib},
	{Name: "small", Files: 25_000, Bytes: 1 * gib, Flat: 20_000, Big: 3, BigMin: 50e6, BigMax: 200e6},
	{Name: "medium", Files: 100_000, Bytes: 5 * gib, Flat: 25_000, Big: 10, BigMin: 50e6, BigMax: 200e6},
	{Name: "large", Files: 1_000_000, Bytes: 20 * gib, Flat: 50_000, Big: 30, BigMin: 50e6, BigMax: 200e6},
}

// PresetNamed returns the preset called name.
func PresetNamed(name string) (Preset, error) {
	var names []string
	for _, p := range Presets {
		if p.Name == name {
			return p, nil
		}
		names = append(names, p.Name)
	}
	return Preset{}, fmt.Errorf("unknown preset %q (have %s)", name, strings.Join(names, ", "))
}

// Config says what Generate makes.
type Config struct {
	Preset
	Seed uint64
	// Jobs is the number of writers (0: GOMAXPROCS); it changes nothing
	// in the tree.
	Jobs int
}

func (c Config) validate() error {
	switch {
	case c.Files < 1:
		return fmt.Errorf("files must be positive, not %d", c.Files)
	case c.Bytes < 0:
		return fmt.Errorf("bytes must not be negative, not %d", c.Bytes)
	case c.Flat < 0:
		return fmt.Errorf("flat must not be negative, not %d", c.Flat)
	case c.Big < 0:
		return fmt.Errorf("big must not be negative, not %d", c.Big)
	case c.BigMin < 0 || c.BigMax < c.BigMin:
		return fmt.Errorf("big sizes %d..%d are not a range", c.BigMin, c.BigMax)
	}
	return nil
}
