package mirrorgen

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
)

// MutateOptions says how big a publish cycle is.
type MutateOptions struct {
	Seed uint64
	// Scale multiplies every change rate (1: a day of a busy mirror); at 0
	// only the indexes are rewritten, as a publish with nothing new does.
	Scale float64
	// Jobs is the number of writers (0: GOMAXPROCS); it changes nothing
	// in the tree.
	Jobs int
}

// Change rates per cycle at Scale 1, as parts of the packages (or files).
const (
	rateUpgrade = 0.004
	rateAdd     = 0.003
	rateRemove  = 0.002
	rateTouch   = 0.001
	rateChmod   = 0.0002
)

// FlatEvery: one cycle in FlatEvery brings a new flat directory; at Scale
// FlatEvery, every cycle does.
const FlatEvery = 8

// Mutate applies one publish cycle to the tree at root, in place. The
// cycle is a pure function of the tree's metadata (paths, types, sizes,
// modes, mtimes, symlink targets) and opt, so it can be replayed on a copy.
func Mutate(root string, opt MutateOptions) (Cycle, error) {
	if opt.Scale < 0 || math.IsNaN(opt.Scale) || math.IsInf(opt.Scale, 0) {
		return Cycle{}, fmt.Errorf("mutate: scale must be a non-negative number, not %v", opt.Scale)
	}
	ents, err := scan(root)
	if err != nil {
		return Cycle{}, err
	}
	c := newCycle(ents, opt)
	c.plan()
	if err := c.apply(writer{root: root, domain: c.domain, jobs: opt.Jobs}); err != nil {
		return Cycle{}, fmt.Errorf("mutate %s: %w", root, err)
	}
	return c.result(), nil
}

const (
	areaDeb = iota
	areaCRAN
	areaPyPI
	areaNPM
	areas
)

// unit is a package: a Debian source directory, a CRAN package name, a
// PyPI project, an npm package directory.
type unit struct {
	area int
	key  string
}

type cycle struct {
	r      *rand.Rand
	domain [32]byte
	now    int64
	scale  float64
	res    Cycle

	ents   []entry // the tree before, sorted
	before map[string]entry
	links  int
	// The tree as it will be after the cycle.
	files    map[string]int64 // regular files and their sizes
	dirs     map[string]bool
	children map[string]int

	// The parsed packages, each list sorted.
	debSrcs  map[string][]debFile // by source directory
	cran     map[string]string    // package -> current tarball
	cranOld  map[string]bool      // names with an Archive/ directory
	cranBin  []string             // release directories, oldest first
	pypi     map[string]string    // normalized name (foo_bar) -> project (foo-bar)
	pypiDist map[string][]string  // normalized name -> distribution files
	npm      map[string][]string  // package directory -> tarballs
	units    []unit
	sizes    [areas][]int64

	// What the cycle does.
	removes    []string
	moves      [][2]string
	writes     []fileSpec
	rewrites   []fileSpec
	newDirs    []dirSpec
	dirTimes   []dirSpec // existing directories whose entries changed
	touches    map[string]int64
	chmods     map[string]fs.FileMode
	affected   map[string]bool // paths whose content or place changes
	changedDir map[string]bool
	pruned     []string
	prune      map[string]bool // candidates: directories something left
}

func newCycle(ents []entry, opt MutateOptions) *cycle {
	h := sha256.New()
	fmt.Fprintf(h, "%s mutate %d %v\n", Version, opt.Seed, opt.Scale)
	c := &cycle{
		ents:       ents,
		scale:      opt.Scale,
		before:     make(map[string]entry, len(ents)),
		files:      map[string]int64{},
		dirs:       map[string]bool{},
		children:   map[string]int{},
		debSrcs:    map[string][]debFile{},
		cran:       map[string]string{},
		cranOld:    map[string]bool{},
		pypi:       map[string]string{},
		pypiDist:   map[string][]string{},
		npm:        map[string][]string{},
		touches:    map[string]int64{},
		chmods:     map[string]fs.FileMode{},
		affected:   map[string]bool{},
		changedDir: map[string]bool{},
		prune:      map[string]bool{},
		res:        Cycle{Seed: opt.Seed},
	}
	var newest int64
	for _, e := range ents {
		fmt.Fprintf(h, "%q %c %o %d %d %q\n", e.path, e.kind, e.mode, e.size, e.mtime, e.target)
		c.before[e.path] = e
		newest = max(newest, e.mtime)
		if e.path != "." {
			c.children[parentOf(e.path)]++
		}
		switch e.kind {
		case 'f':
			c.files[e.path] = e.size
		case 'd':
			c.dirs[e.path] = true
		case 'l':
			c.links++
		}
	}
	h.Sum(c.domain[:0])
	c.r = rand.New(rand.NewPCG(leUint64(c.domain[:8]), leUint64(c.domain[8:16])))
	// The cycle happens a few hours after the newest thing in the tree.
	c.now = newest - newest%1e9 + hour + c.r.Int64N(23*hour) + c.r.Int64N(1e9)
	c.parse(ents)
	return c
}

// parse finds the packages of each area in the sorted listing.
func (c *cycle) parse(ents []entry) {
	for _, e := range ents {
		switch {
		case e.kind == 'f' && strings.HasPrefix(e.path, "pool/"):
			if d, ok := parseDeb(e.path); ok {
				c.debSrcs[d.dir] = append(c.debSrcs[d.dir], d)
				c.sizes[areaDeb] = append(c.sizes[areaDeb], e.size)
			}
		case e.kind == 'f' && parentOf(e.path) == cranDir:
			if pkg, _, ok := parseCRAN(path.Base(e.path), ".tar.gz"); ok {
				c.cran[pkg] = e.path
				c.sizes[areaCRAN] = append(c.sizes[areaCRAN], e.size)
			}
		case e.kind == 'd' && parentOf(e.path) == cranArchive:
			c.cranOld[path.Base(e.path)] = true
		case e.kind == 'd' && parentOf(e.path) == cranBinDir:
			c.cranBin = append(c.cranBin, e.path)
		case e.kind == 'f' && strings.HasPrefix(e.path, pypiSimple+"/") && strings.Count(e.path, "/") == 3 && path.Base(e.path) == "index.html":
			p := path.Base(parentOf(e.path))
			c.pypi[strings.ReplaceAll(p, "-", "_")] = p
		case e.kind == 'f' && strings.HasPrefix(e.path, pypiPackage+"/") && strings.Count(e.path, "/") == 5:
			if norm, _, _, ok := parsePyPIFile(path.Base(e.path)); ok {
				c.pypiDist[norm] = append(c.pypiDist[norm], e.path)
				c.sizes[areaPyPI] = append(c.sizes[areaPyPI], e.size)
			}
		case e.kind == 'f' && strings.HasPrefix(e.path, npmDir+"/"):
			if dir, _, ok := parseNPMTarball(e.path); ok {
				c.npm[dir] = append(c.npm[dir], e.path)
				c.sizes[areaNPM] = append(c.sizes[areaNPM], e.size)
			}
		}
	}
	slices.SortFunc(c.cranBin, func(a, b string) int { return compareVersions(path.Base(a), path.Base(b)) })
	for _, d := range sortedKeys(c.debSrcs) {
		c.units = append(c.units, unit{areaDeb, d})
	}
	for _, p := range sortedKeys(c.cran) {
		c.units = append(c.units, unit{areaCRAN, p})
	}
	for _, n := range sortedKeys(c.pypi) {
		c.units = append(c.units, unit{areaPyPI, n})
	}
	for _, d := range sortedKeys(c.npm) {
		if _, ok := c.files[d+"/index.json"]; ok {
			c.units = append(c.units, unit{areaNPM, d})
		}
	}
}

// count is rate of n, rounded at random; at least one when the cycle
// changes anything, so that every cycle of a small tree exercises every
// kind of change.
func (c *cycle) count(rate float64, n int) int {
	if c.scale == 0 || n == 0 {
		return 0
	}
	x := rate * c.scale * float64(n)
	k := int(x)
	if c.r.Float64() < x-float64(k) {
		k++
	}
	return min(max(k, 1), n)
}

// plan chooses everything the cycle changes. Every step draws from c.r, so
// their order is part of the output: packages removed, upgraded and added,
// the flat directory, the indexes, then the steps that need the final
// entries.
func (c *cycle) plan() {
	// Each area changes in proportion to its own size, so that a huge
	// area does not take every change of a small tree. PyPI and npm
	// rarely delete anything.
	removeWeight := [areas]float64{areaDeb: 1, areaCRAN: 1, areaPyPI: 0.2, areaNPM: 0.2}
	var byArea [areas][]unit
	for _, u := range c.units {
		byArea[u.area] = append(byArea[u.area], u)
	}
	var removed, upgraded []unit
	var adds [areas]int
	for a, units := range byArea {
		n := len(units)
		nr := c.count(rateRemove*removeWeight[a], n)
		nu := min(c.count(rateUpgrade, n), n-nr)
		// The first nr+nu of a partial shuffle: removed, then upgraded.
		units = slices.Clone(units)
		for i := 0; i < nr+nu; i++ {
			j := i + c.r.IntN(n-i)
			units[i], units[j] = units[j], units[i]
		}
		removed = append(removed, units[:nr]...)
		upgraded = append(upgraded, units[nr:nr+nu]...)
		adds[a] = c.count(rateAdd, n)
	}
	for _, u := range removed {
		c.removeUnit(u)
	}
	for _, u := range upgraded {
		c.upgradeUnit(u)
	}
	for a, n := range adds {
		for range n {
			c.addUnit(a)
		}
	}
	if c.scale > 0 && len(c.cran) > 0 && c.r.Float64() < c.scale/FlatEvery {
		c.flatDir()
	}
	c.indexes()
	c.pruneDirs()
	c.lsLR()
	c.touchAndChmod()
	c.dateDirs()
}

// touchAndChmod gives a few files that nothing else changed a new mtime
// (republished with the same content) or a new mode.
func (c *cycle) touchAndChmod() {
	var candidates []string
	for _, e := range c.ents {
		if _, ok := c.files[e.path]; ok && e.kind == 'f' && !c.affected[e.path] {
			candidates = append(candidates, e.path)
		}
	}
	c.r.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	nt := c.count(rateTouch, len(candidates))
	nc := c.count(rateChmod, len(candidates)-nt)
	for _, p := range candidates[:nt] {
		t := c.now - c.r.Int64N(30*day)
		if t == c.before[p].mtime {
			t++
		}
		c.touches[p] = t
		c.res.Touched++
	}
	for _, p := range candidates[nt : nt+nc] {
		m := fs.FileMode(0o644)
		if c.before[p].mode == 0o644 {
			m = []fs.FileMode{0o664, 0o755}[c.r.IntN(2)]
		}
		c.chmods[p] = m
		c.res.Chmod++
	}
}

// pruneDirs removes the directories the cycle emptied, up to the roots of
// the areas.
func (c *cycle) pruneDirs() {
	for len(c.prune) > 0 {
		ds := sortedKeys(c.prune)
		clear(c.prune)
		for _, d := range ds {
			if !c.dirs[d] || c.children[d] > 0 || areaRoot(d) {
				continue
			}
			delete(c.dirs, d)
			c.pruned = append(c.pruned, d)
			c.res.DirsRemoved++
			c.leave(d)
		}
	}
}

// areaRoot reports whether d is one of the directories the layout always
// has (or above one).
func areaRoot(d string) bool {
	for _, r := range []string{"pool/main", "pool/contrib", "pool/non-free-firmware", cranArchive, cranBinDir, pypiSimple, pypiPackage, npmDir} {
		if d == r || d == "." || strings.HasPrefix(r, d+"/") {
			return true
		}
	}
	return false
}

// dateDirs dates the directories the cycle made, and those whose entries
// it changed, to the cycle: on disk they would carry the time of the change.
func (c *cycle) dateDirs() {
	for i := range c.newDirs {
		c.newDirs[i].mtime = c.now + c.r.Int64N(600*1e9)
	}
	for _, d := range sortedKeys(c.changedDir) {
		if e, ok := c.before[d]; ok && c.dirs[d] {
			c.dirTimes = append(c.dirTimes, dirSpec{path: d, mode: e.mode, mtime: c.now + c.r.Int64N(600*1e9)})
		}
	}
}
