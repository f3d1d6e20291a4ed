package mirrorgen

import (
	"math"
	"path"
	"slices"
	"strings"
)

// removeUnit takes a package off the mirror: its files and, in PyPI and
// npm, its document. CRAN archives it instead.
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

// upgradeUnit publishes a new version of a package, each new file a little
// bigger than the one it follows.
func (c *cycle) upgradeUnit(u unit) {
	c.res.Upgraded++
	switch u.area {
	case areaDeb:
		c.upgradeDeb(u.key)
	case areaCRAN:
		c.upgradeCRAN(u.key)
	case areaPyPI:
		c.upgradePyPI(u.key)
	case areaNPM:
		c.upgradeNPM(u.key)
	}
}

// upgradeDeb gives the newest binaries of the source in directory src a
// new version, and drops all but the two newest versions.
func (c *cycle) upgradeDeb(src string) {
	files := c.debSrcs[src]
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
			c.addFile(debPath(d.dir, d.pkg, next, d.arch), c.grow(c.files[debPath(d.dir, d.pkg, d.ver, d.arch)]), fileMode(c.r))
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
	c.debSrcs[src] = kept
}

// upgradeCRAN archives the package's tarball and publishes the next
// version in its place.
func (c *cycle) upgradeCRAN(pkg string) {
	old := c.cran[pkg]
	size := c.files[old]
	_, ver, _ := parseCRAN(path.Base(old), ".tar.gz")
	c.archiveCRAN(pkg)
	v := bumpVersion(c.r, ver)
	for compareVersions(v, ver) <= 0 || c.exists(cranDir+"/"+pkg+"_"+v+".tar.gz") {
		v = bumpVersion(c.r, v)
	}
	next := cranDir + "/" + pkg + "_" + v + ".tar.gz"
	c.addFile(next, c.grow(size), fileMode(c.r))
	c.cran[pkg] = next
}

// upgradePyPI adds the next release of the project (normalized name
// norm): an sdist and a wheel for each tag of the newest; old releases stay.
func (c *cycle) upgradePyPI(norm string) {
	dists := c.pypiDist[norm]
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
	for _, name := range pypiFileNames(c.pypi[norm], next, tags) {
		p := pypiFilePath(c.domain, name)
		if c.exists(p) {
			continue
		}
		c.addFile(p, c.grow(size), fileMode(c.r))
		c.pypiDist[norm] = append(c.pypiDist[norm], p)
	}
}

// upgradeNPM adds the next version's tarball to the package directory
// dir; old versions stay.
func (c *cycle) upgradeNPM(dir string) {
	var newest string
	var size int64
	for _, p := range c.npm[dir] {
		_, v, _ := parseNPMTarball(p)
		if newest == "" || compareVersions(v, newest) > 0 {
			newest, size = v, c.files[p]
		}
	}
	next := npmTarball(dir, path.Base(dir), bumpVersion(c.r, newest))
	if !c.exists(next) {
		c.addFile(next, c.grow(size), fileMode(c.r))
		c.npm[dir] = append(c.npm[dir], next)
	}
}

// addUnit publishes a package under a new name in area, its files about
// the size of the area's others.
func (c *cycle) addUnit(area int) {
	c.res.NewPackages++
	switch area {
	case areaDeb:
		c.addDeb()
	case areaCRAN:
		c.addCRAN()
	case areaPyPI:
		c.addPyPI()
	case areaNPM:
		c.addNPM()
	}
}

// addDeb adds a source's binaries under a new pool directory, in main or,
// now and then, contrib.
func (c *cycle) addDeb() {
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
		c.addFile(p, c.like(areaDeb), fileMode(c.r))
		d, _ := parseDeb(p)
		c.debSrcs[dir] = append(c.debSrcs[dir], d)
	}
}

// addCRAN adds a tarball under a name never used, archived ones included.
func (c *cycle) addCRAN() {
	var name string
	for {
		name = cranName(c.r)
		if c.cran[name] == "" && !c.cranOld[name] {
			break
		}
	}
	p := cranDir + "/" + name + "_" + cranVersion(c.r) + ".tar.gz"
	c.addFile(p, c.like(areaCRAN), fileMode(c.r))
	c.cran[name] = p
}

// addPyPI adds a project: an sdist, a random few wheels and its index.html.
func (c *cycle) addPyPI() {
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
		c.addFile(p, c.like(areaPyPI), fileMode(c.r))
		c.pypiDist[norm] = append(c.pypiDist[norm], p)
	}
	c.pypi[norm] = name
	c.addFile(pypiSimple+"/"+name+"/index.html", pypiProjectIndexSize(c.r, len(c.pypiDist[norm])), 0o644)
}

// addNPM adds a package directory: one tarball and its index.json.
func (c *cycle) addNPM() {
	var name string
	for {
		name = npmName(c.r)
		if !c.exists(npmDir + "/" + name) {
			break
		}
	}
	dir := npmDir + "/" + name
	p := npmTarball(dir, name, npmVersion(c.r))
	c.addFile(p, c.like(areaNPM), fileMode(c.r))
	c.npm[dir] = []string{p}
	c.addFile(dir+"/index.json", npmIndexSize(c.r, 1), 0o644)
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
