package mirrorgen

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
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

// Cycle is what one publish cycle did. After it, the tree holds Files
// regular files (the count before, plus Added, minus Removed) of Bytes.
type Cycle struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// ChangedFiles are the paths whose content is new: Added plus
	// IndexRewrites; ChangedBytes is their size.
	ChangedFiles int   `json:"changed_files"`
	ChangedBytes int64 `json:"changed_bytes"`
	// Added files are new paths with new content (new packages and
	// versions, a new flat directory); Removed files are gone; Archived
	// files moved (CRAN's Archive/) with their content and mtime.
	Added    int `json:"added"`
	Removed  int `json:"removed"`
	Archived int `json:"archived"`
	// Packages (a Debian source, a CRAN, PyPI or npm package) new, gone
	// and given a new version.
	NewPackages     int `json:"new_packages"`
	RemovedPackages int `json:"removed_packages"`
	Upgraded        int `json:"upgraded"`
	// IndexRewrites are files replaced by new content under the same path
	// (Packages, Release, PACKAGES, index.html, index.json, traces).
	IndexRewrites int `json:"index_rewrites"`
	// Touched files got a new mtime only; Chmod files a new mode only.
	Touched     int `json:"touched"`
	Chmod       int `json:"chmod"`
	DirsAdded   int `json:"dirs_added"`
	DirsRemoved int `json:"dirs_removed"`
	// A new release's binary directory, one entry per CRAN package, and
	// the oldest one dropped: the occasional huge flat directory.
	FlatDirAdded   string `json:"flat_dir_added,omitempty"`
	FlatDirRemoved string `json:"flat_dir_removed,omitempty"`
	Seed           uint64 `json:"seed"`
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

func (c *cycle) removeUnit(u unit) {
	c.res.RemovedPackages++
	switch u.area {
	case areaDeb:
		for _, d := range c.debSrcs[u.key] {
			c.removeFile(debPath(d.dir, d.pkg, d.ver, d.arch))
		}
		delete(c.debSrcs, u.key)
	case areaCRAN:
		// CRAN archives a package rather than deleting it.
		c.archiveCRAN(u.key)
		delete(c.cran, u.key)
	case areaPyPI:
		for _, p := range c.pypiDist[u.key] {
			c.removeFile(p)
		}
		c.removeFile(pypiSimple + "/" + c.pypi[u.key] + "/index.html")
		delete(c.pypi, u.key)
		delete(c.pypiDist, u.key)
	case areaNPM:
		for _, p := range c.npm[u.key] {
			c.removeFile(p)
		}
		c.removeFile(u.key + "/index.json")
		delete(c.npm, u.key)
	}
}

func (c *cycle) upgradeUnit(u unit) {
	c.res.Upgraded++
	switch u.area {
	case areaDeb:
		files := c.debSrcs[u.key]
		vers := map[string]bool{}
		var newest string
		for _, d := range files {
			vers[d.ver] = true
			if newest == "" || compareVersions(d.ver, newest) > 0 {
				newest = d.ver
			}
		}
		next := bumpDebVersion(c.r, newest)
		for vers[next] || compareVersions(next, newest) <= 0 {
			next = bumpDebVersion(c.r, next)
		}
		var kept []debFile
		for _, d := range files {
			if d.ver == newest {
				n := d
				n.ver = next
				c.addFile(debPath(d.dir, d.pkg, next, d.arch), c.grow(c.files[debPath(d.dir, d.pkg, d.ver, d.arch)]), c.fileMode())
				kept = append(kept, n)
			}
		}
		// The pool keeps two versions (stable's and unstable's).
		ordered := sortedKeys(vers)
		slices.SortFunc(ordered, compareVersions)
		drop := map[string]bool{}
		for len(ordered) >= 2 {
			drop[ordered[0]] = true
			ordered = ordered[1:]
		}
		for _, d := range files {
			if drop[d.ver] {
				c.removeFile(debPath(d.dir, d.pkg, d.ver, d.arch))
			} else {
				kept = append(kept, d)
			}
		}
		c.debSrcs[u.key] = kept
	case areaCRAN:
		old := c.cran[u.key]
		size := c.files[old]
		_, ver, _ := parseCRAN(path.Base(old), ".tar.gz")
		c.archiveCRAN(u.key)
		v := bumpVersion(c.r, ver)
		for compareVersions(v, ver) <= 0 || c.exists(cranDir+"/"+u.key+"_"+v+".tar.gz") {
			v = bumpVersion(c.r, v)
		}
		next := cranDir + "/" + u.key + "_" + v + ".tar.gz"
		c.addFile(next, c.grow(size), c.fileMode())
		c.cran[u.key] = next
	case areaPyPI:
		dists := c.pypiDist[u.key]
		var newest string
		var size int64
		for _, p := range dists {
			_, v, _, _ := parsePyPIFile(path.Base(p))
			if newest == "" || compareVersions(v, newest) > 0 {
				newest, size = v, c.files[p]
			}
		}
		var tags []string
		for _, p := range dists {
			if _, v, tag, _ := parsePyPIFile(path.Base(p)); v == newest && tag != "" {
				tags = append(tags, tag)
			}
		}
		slices.Sort(tags)
		next := bumpVersion(c.r, newest)
		for _, name := range pypiFileNames(c.pypi[u.key], next, tags) {
			p := pypiFilePath(c.domain, name)
			if c.exists(p) {
				continue
			}
			c.addFile(p, c.grow(size), c.fileMode())
			c.pypiDist[u.key] = append(c.pypiDist[u.key], p)
		}
	case areaNPM:
		var newest string
		var size int64
		for _, p := range c.npm[u.key] {
			_, v, _ := parseNPMTarball(p)
			if newest == "" || compareVersions(v, newest) > 0 {
				newest, size = v, c.files[p]
			}
		}
		next := npmTarball(u.key, path.Base(u.key), bumpVersion(c.r, newest))
		if !c.exists(next) {
			c.addFile(next, c.grow(size), c.fileMode())
			c.npm[u.key] = append(c.npm[u.key], next)
		}
	}
}

func (c *cycle) addUnit(area int) {
	c.res.NewPackages++
	switch area {
	case areaDeb:
		var src, dir string
		for {
			src = debSource(c.r)
			comp := "main"
			if c.r.IntN(100) < 7 {
				comp = "contrib"
			}
			dir = "pool/" + comp + "/" + debPrefix(src) + "/" + src
			if !c.exists(dir) && !c.debSourceExists(src) {
				break
			}
		}
		bins, archs := debBinaries(c.r, src)
		ver := debVersion(c.r)
		for i, bin := range bins {
			p := debPath(dir, bin, ver, archs[i])
			c.addFile(p, c.like(areaDeb), c.fileMode())
			d, _ := parseDeb(p)
			c.debSrcs[dir] = append(c.debSrcs[dir], d)
		}
	case areaCRAN:
		var name string
		for {
			name = cranName(c.r)
			if c.cran[name] == "" && !c.cranOld[name] {
				break
			}
		}
		p := cranDir + "/" + name + "_" + cranVersion(c.r) + ".tar.gz"
		c.addFile(p, c.like(areaCRAN), c.fileMode())
		c.cran[name] = p
	case areaPyPI:
		var name string
		for {
			name = pypiName(c.r)
			if _, ok := c.pypi[strings.ReplaceAll(name, "-", "_")]; !ok && !c.exists(pypiSimple+"/"+name) {
				break
			}
		}
		norm := strings.ReplaceAll(name, "-", "_")
		var tags []string
		for _, t := range wheelTags {
			if c.r.IntN(3) == 0 {
				tags = append(tags, t)
			}
		}
		for _, f := range pypiFileNames(name, semver(c.r), tags) {
			p := pypiFilePath(c.domain, f)
			c.addFile(p, c.like(areaPyPI), c.fileMode())
			c.pypiDist[norm] = append(c.pypiDist[norm], p)
		}
		c.pypi[norm] = name
		c.addFile(pypiSimple+"/"+name+"/index.html", pypiProjectIndexSize(c.r, len(c.pypiDist[norm])), 0o644)
	case areaNPM:
		var name string
		for {
			name = npmName(c.r)
			if !c.exists(npmDir + "/" + name) {
				break
			}
		}
		dir := npmDir + "/" + name
		p := npmTarball(dir, name, npmVersion(c.r))
		c.addFile(p, c.like(areaNPM), c.fileMode())
		c.npm[dir] = []string{p}
		c.addFile(dir+"/index.json", npmIndexSize(c.r, 1), 0o644)
	}
}

func (c *cycle) debSourceExists(src string) bool {
	for _, comp := range []string{"main", "contrib", "non-free-firmware"} {
		if c.exists("pool/" + comp + "/" + debPrefix(src) + "/" + src) {
			return true
		}
	}
	return false
}

// archiveCRAN moves a package's current tarball to Archive/<pkg>/.
func (c *cycle) archiveCRAN(pkg string) {
	from := c.cran[pkg]
	to := cranArchive + "/" + pkg + "/" + path.Base(from)
	if c.exists(to) {
		// Archived before under the same version (an odd tree): keep
		// that copy, drop this one.
		c.removeFile(from)
		return
	}
	c.moveFile(from, to)
	c.cranOld[pkg] = true
}

// flatDir adds a binary directory for the next R release, one zip per
// package, and drops the oldest when two were there.
func (c *cycle) flatDir() {
	if len(c.cranBin) >= 2 {
		old := c.cranBin[0]
		c.cranBin = c.cranBin[1:]
		for _, e := range c.ents {
			if e.kind == 'f' && strings.HasPrefix(e.path, old+"/") {
				c.removeFile(e.path)
			}
		}
		c.res.FlatDirRemoved = old
	}
	ver := "4.5"
	if n := len(c.cranBin); n > 0 {
		ver = bumpLast(path.Base(c.cranBin[n-1]))
	}
	dir := cranBinDir + "/" + ver
	for c.exists(dir) {
		dir = cranBinDir + "/" + bumpLast(path.Base(dir))
	}
	// Binaries are about as big as the sources, but a new release's
	// directory is kept to about 2 % of the tree's bytes: it is the number
	// of entries that makes this event.
	var total, cranBytes int64
	for _, s := range c.files {
		total += s
	}
	pkgs := sortedKeys(c.cran)
	for _, p := range pkgs {
		cranBytes += c.files[c.cran[p]]
	}
	f := min(1, 0.02*float64(total)/float64(max(cranBytes, 1)))
	for _, p := range pkgs {
		_, ver, _ := parseCRAN(path.Base(c.cran[p]), ".tar.gz")
		size := int64(float64(c.files[c.cran[p]]) * f * (0.7 + 0.6*c.r.Float64()))
		c.addFile(dir+"/"+p+"_"+ver+".zip", max(size, 1), 0o644)
	}
	sizes := cranIndexSizes(c.r, len(pkgs))
	for i, name := range cranIndexNames {
		c.addFile(dir+"/"+name, sizes[i], 0o644)
	}
	c.cranBin = append(c.cranBin, dir)
	c.res.FlatDirAdded = dir
}

// indexes rewrites what lists the packages: the Debian suites (stable's
// only at a point release), CRAN's PACKAGES, the PyPI and npm documents of
// the packages that changed, and the traces.
func (c *cycle) indexes() {
	debs := map[string]int{}
	for _, files := range c.debSrcs {
		for _, d := range files {
			debs[d.comp]++
		}
	}
	for _, suite := range suites {
		if suite == "bookworm" && c.r.IntN(10) != 0 {
			continue
		}
		rewritten := false
		for _, comp := range components {
			if debs[comp] == 0 && c.files[binaryDir(suite, comp)+"/Packages"] == 0 {
				continue // still empty: nothing to publish
			}
			sizes := debIndexSizes(c.r, suite, debs[comp])
			for i, name := range indexNames {
				rewritten = c.rewrite(binaryDir(suite, comp)+"/"+name, sizes[i]) || rewritten
			}
		}
		if rewritten {
			rel, inRel := releaseSizes(c.r)
			c.rewrite("dists/"+suite+"/Release", rel)
			c.rewrite("dists/"+suite+"/InRelease", inRel)
		}
	}
	if len(c.cran) > 0 {
		sizes := cranIndexSizes(c.r, len(c.cran))
		for i, name := range cranIndexNames {
			c.rewrite(cranDir+"/"+name, sizes[i])
		}
	}
	for _, norm := range sortedKeys(c.pypiDist) {
		if name, ok := c.pypi[norm]; ok && c.anyAffected(c.pypiDist[norm]) {
			c.rewrite(pypiSimple+"/"+name+"/index.html", pypiProjectIndexSize(c.r, len(c.pypiDist[norm])))
		}
	}
	// Mirrors regenerate the root of the simple index on every run.
	c.rewrite(pypiSimple+"/index.html", pypiRootIndexSize(c.r, len(c.pypi)))
	for _, dir := range sortedKeys(c.npm) {
		if c.anyAffected(c.npm[dir]) {
			c.rewrite(dir+"/index.json", npmIndexSize(c.r, len(c.npm[dir])))
		}
	}
	for _, p := range traceFiles {
		c.rewrite(p, traceSize(c.r))
	}
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

// lsLR is rewritten once the entries are final: it lists the tree as the
// cycle leaves it.
func (c *cycle) lsLR() {
	c.rewrite(lsLR, lsLRSize(c.r, len(c.files)+len(c.dirs)+c.links))
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

// The cycle's bookkeeping: each records what changes on disk and in the
// model of the tree after it.

func (c *cycle) exists(p string) bool {
	_, f := c.files[p]
	_, b := c.before[p]
	return f || c.dirs[p] || b
}

func (c *cycle) anyAffected(ps []string) bool {
	for _, p := range ps {
		if c.affected[p] {
			return true
		}
	}
	return false
}

func (c *cycle) enter(p string) {
	d := parentOf(p)
	c.ensureDir(d)
	c.children[d]++
	c.changedDir[d] = true
}

func (c *cycle) leave(p string) {
	d := parentOf(p)
	c.children[d]--
	c.changedDir[d] = true
	c.prune[d] = true
}

func (c *cycle) ensureDir(d string) {
	if c.dirs[d] {
		return
	}
	c.enter(d)
	c.dirs[d] = true
	mode := fs.FileMode(0o755)
	if c.r.IntN(50) == 0 {
		mode = 0o775
	}
	c.newDirs = append(c.newDirs, dirSpec{path: d, mode: mode})
	c.res.DirsAdded++
}

func (c *cycle) addFile(p string, size int64, mode fs.FileMode) {
	c.enter(p)
	c.files[p] = size
	c.affected[p] = true
	c.writes = append(c.writes, fileSpec{path: p, size: size, mode: mode, mtime: c.now - c.r.Int64N(6*hour)})
	c.res.Added++
}

func (c *cycle) removeFile(p string) {
	if _, ok := c.files[p]; !ok {
		return
	}
	delete(c.files, p)
	c.affected[p] = true
	c.removes = append(c.removes, p)
	c.leave(p)
	c.res.Removed++
}

func (c *cycle) moveFile(from, to string) {
	c.enter(to)
	c.files[to] = c.files[from]
	delete(c.files, from)
	c.affected[from], c.affected[to] = true, true
	c.moves = append(c.moves, [2]string{from, to})
	c.leave(from)
	c.res.Archived++
}

// rewrite replaces an existing file with new content of size bytes; it
// reports whether there was such a file.
func (c *cycle) rewrite(p string, size int64) bool {
	e, ok := c.before[p]
	if _, still := c.files[p]; !ok || e.kind != 'f' || !still || c.affected[p] {
		return false
	}
	c.files[p] = size
	c.affected[p] = true
	c.changedDir[parentOf(p)] = true // replaced by a rename
	c.rewrites = append(c.rewrites, fileSpec{path: p, size: size, mode: e.mode, mtime: c.now - c.r.Int64N(hour)})
	c.res.IndexRewrites++
	return true
}

// like draws the size of a new package in area: a random existing one's,
// give or take.
func (c *cycle) like(area int) int64 {
	s := c.sizes[area]
	if len(s) == 0 {
		return 1 + c.r.Int64N(100*kib)
	}
	return max(1, int64(float64(s[c.r.IntN(len(s))])*math.Exp(0.3*c.r.NormFloat64())))
}

// grow is a new version's size: the old one's, a little bigger on average.
func (c *cycle) grow(size int64) int64 {
	return max(1, int64(float64(size)*math.Exp(0.02+0.1*c.r.NormFloat64())))
}

func (c *cycle) fileMode() fs.FileMode {
	switch x := c.r.IntN(1000); {
	case x < 12:
		return 0o755
	case x < 14:
		return 0o600
	}
	return 0o644
}

// apply carries the plan out on disk. Nothing below a symlink is touched:
// every directory that was there before and is written in or removed from
// is checked with lstat first (the ones the cycle makes are below those).
func (c *cycle) apply(w writer) error {
	real := map[string]bool{}
	check := func(p string) error {
		d := parentOf(p)
		if _, ok := c.before[d]; !ok {
			return nil
		}
		return w.realDir(d, real)
	}
	checkAll := func(files []fileSpec) error {
		for _, f := range files {
			if err := check(f.path); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range c.removes {
		if err := check(p); err != nil {
			return err
		}
		if err := os.Remove(w.abs(p)); err != nil {
			return fmt.Errorf("remove: %w", err)
		}
	}
	for _, d := range c.newDirs {
		if err := check(d.path); err != nil {
			return err
		}
		if err := os.Mkdir(w.abs(d.path), 0o755); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
	}
	for _, m := range c.moves {
		if err := check(m[0]); err != nil {
			return err
		}
		if err := check(m[1]); err != nil {
			return err
		}
		if _, err := os.Lstat(w.abs(m[1])); err == nil {
			return fmt.Errorf("move %s: %s exists", m[0], m[1])
		}
		if err := os.Rename(w.abs(m[0]), w.abs(m[1])); err != nil {
			return fmt.Errorf("move: %w", err)
		}
	}
	if err := checkAll(c.writes); err != nil {
		return err
	}
	if err := w.writeFiles(c.writes, false); err != nil {
		return err
	}
	if err := checkAll(c.rewrites); err != nil {
		return err
	}
	if err := w.writeFiles(c.rewrites, true); err != nil {
		return err
	}
	// Emptied directories, deepest first.
	slices.SortStableFunc(c.pruned, func(a, b string) int { return cmpInt(depth(b), depth(a)) })
	for _, d := range c.pruned {
		if err := check(d); err != nil {
			return err
		}
		if err := os.Remove(w.abs(d)); err != nil {
			return fmt.Errorf("remove emptied directory: %w", err)
		}
	}
	for _, p := range sortedKeys(c.touches) {
		if err := check(p); err != nil {
			return err
		}
		if err := setMtime(w.abs(p), c.touches[p]); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	for _, p := range sortedKeys(c.chmods) {
		if err := check(p); err != nil {
			return err
		}
		if err := chmodNoFollow(w.abs(p), c.chmods[p]); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	for _, d := range c.dirTimes {
		if err := w.realDir(d.path, real); err != nil {
			return err
		}
	}
	if err := w.dirMeta(c.newDirs); err != nil {
		return err
	}
	return w.dirMeta(c.dirTimes)
}

func (c *cycle) result() Cycle {
	r := c.res
	r.Files = len(c.files)
	for _, s := range c.files {
		r.Bytes += s
	}
	for _, f := range append(slices.Clone(c.writes), c.rewrites...) {
		r.ChangedFiles++
		r.ChangedBytes += f.size
	}
	return r
}
