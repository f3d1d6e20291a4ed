package mirrorgen

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

// lsLR is rewritten once the entries are final: it lists the tree as the
// cycle leaves it.
func (c *cycle) lsLR() {
	c.rewrite(lsLR, lsLRSize(c.r, len(c.files)+len(c.dirs)+c.links))
}
