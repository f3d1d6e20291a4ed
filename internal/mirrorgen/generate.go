package mirrorgen

import (
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

var (
	// Every generated mtime lies in [epoch, the tree's now], now being in
	// the second half of 2025.
	epoch   = time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	nowBase = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC).UnixNano()
)

const (
	hour = int64(time.Hour)
	day  = 24 * hour
)

// Summary counts what Generate wrote.
type Summary struct {
	Files    int   `json:"files"`
	Bytes    int64 `json:"bytes"`
	Dirs     int   `json:"dirs"`
	Symlinks int   `json:"symlinks"`
}

// Generate writes the tree of cfg into dir, which must be absent or empty.
func Generate(dir string, cfg Config) (Summary, error) {
	if err := cfg.validate(); err != nil {
		return Summary{}, err
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return Summary{}, fmt.Errorf("generate into %s: the directory is not empty", dir)
	} else if err != nil && !os.IsNotExist(err) {
		return Summary{}, fmt.Errorf("generate into %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Summary{}, fmt.Errorf("generate: %w", err)
	}
	p := newPlan(cfg)
	w := writer{root: dir, domain: p.domain, jobs: cfg.Jobs}
	if err := w.mkdirs(p.dirs); err != nil {
		return Summary{}, fmt.Errorf("generate into %s: %w", dir, err)
	}
	if err := w.writeFiles(p.files, false); err != nil {
		return Summary{}, fmt.Errorf("generate into %s: %w", dir, err)
	}
	if err := w.links(p.links); err != nil {
		return Summary{}, fmt.Errorf("generate into %s: %w", dir, err)
	}
	// Last: an entry made in a directory would change its mtime.
	if err := w.dirMeta(p.dirs); err != nil {
		return Summary{}, fmt.Errorf("generate into %s: %w", dir, err)
	}
	s := Summary{Files: len(p.files), Dirs: len(p.dirs), Symlinks: len(p.links)}
	for _, f := range p.files {
		s.Bytes += f.size
	}
	return s, nil
}

// plan is a whole tree before it is written: directories sorted, parents
// first; files and links in the order they were planned.
type plan struct {
	domain [32]byte
	dirs   []dirSpec
	files  []fileSpec
	links  []linkSpec
}

// planner draws a tree from one random stream: the same Config always
// makes the same draws in the same order.
type planner struct {
	r      *rand.Rand
	domain [32]byte
	now    int64
	dirs   map[string]*dirSpec
	files  []fileSpec
	links  []linkSpec
	// weight is the relative size of each file, parallel to files; the
	// package files' are scaled to the byte budget at the end, a file with
	// a fixed size (an index, a huge package) has 0.
	weight []float64
}

func newPlan(cfg Config) *plan {
	seed := domainKey("gen", strconv.FormatUint(cfg.Seed, 10))
	pl := &planner{
		r:      rand.New(rand.NewPCG(leUint64(seed[:8]), leUint64(seed[8:16]))),
		domain: seed,
		dirs:   map[string]*dirSpec{".": {path: ".", mode: 0o755}},
	}
	pl.now = nowBase + pl.r.Int64N(180*day)

	// The file budget: what is left after the fixed files and the flat
	// directory goes to Debian, PyPI and npm.
	fixed := len(docFiles) + len(toolFiles) + len(traceFiles) + 1 +
		len(suites)*(len(components)*len(indexNames)+2)
	cranPkgs := 0
	if cfg.Flat >= len(cranIndexNames)+2 {
		cranPkgs = cfg.Flat - len(cranIndexNames) - 1 // and Archive/
	}
	archived := int(math.Round(0.03 * float64(cranPkgs)))
	rest := max(cfg.Files-fixed-cranPkgs-len(cranIndexNames)-archived, 0)

	pl.misc()
	pl.debian(int(0.65*float64(rest)), cfg)
	if cranPkgs > 0 {
		pl.cran(cranPkgs, archived)
	}
	pl.pypi(int(0.20 * float64(rest)))
	pl.npm(int(0.15 * float64(rest)))
	pl.scale(cfg.Bytes)
	pl.everyMode()
	pl.lsLR()
	return pl.finish()
}

// everyMode makes sure that even a small tree has a package file of each
// mode fileMode draws and a directory of each mode dir draws, for the
// importers' metadata paths.
func (pl *planner) everyMode() {
	dirs := slices.DeleteFunc(sortedKeys(pl.dirs), func(d string) bool { return d == "." })
	if !slices.ContainsFunc(dirs, func(d string) bool { return pl.dirs[d].mode == 0o775 }) && len(dirs) > 0 {
		pl.dirs[dirs[pl.r.IntN(len(dirs))]].mode = 0o775
	}
	var pkgs []int
	have := map[fs.FileMode]bool{}
	for i, f := range pl.files {
		if pl.weight[i] > 0 {
			pkgs = append(pkgs, i)
			have[f.mode] = true
		}
	}
	for _, m := range []fs.FileMode{0o755, 0o600} {
		if !have[m] && len(pkgs) > 0 {
			pl.files[pkgs[pl.r.IntN(len(pkgs))]].mode = m
		}
	}
}

func leUint64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// mtime draws a publication time, recent ones more likely, as in a live
// archive.
func (pl *planner) mtime() int64 {
	u := math.Pow(pl.r.Float64(), 0.6)
	return epoch + int64(u*float64(pl.now-epoch))
}

// recent is within span before now.
func (pl *planner) recent(span int64) int64 { return pl.now - pl.r.Int64N(span) }

func (pl *planner) dir(p string) {
	if _, ok := pl.dirs[p]; ok {
		return
	}
	pl.dir(parentOf(p))
	mode := fs.FileMode(0o755)
	if pl.r.IntN(50) == 0 {
		mode = 0o775
	}
	pl.dirs[p] = &dirSpec{path: p, mode: mode}
}

func (pl *planner) file(p string, size int64, mode fs.FileMode, mtime int64) {
	pl.dir(parentOf(p))
	pl.files = append(pl.files, fileSpec{path: p, size: size, mode: mode, mtime: mtime})
	pl.weight = append(pl.weight, 0)
}

// pkgFile is a package file whose size is weight (a relative size) until
// scale sets it.
func (pl *planner) pkgFile(p string, weight float64, mtime int64) {
	pl.file(p, 0, fileMode(pl.r), mtime)
	pl.weight[len(pl.weight)-1] = weight
}

// heavyTail draws a relative size with mean about 1: lognormal, the long
// tail cut at 1000 times the mean.
func (pl *planner) heavyTail(sigma float64) float64 {
	return min(math.Exp(sigma*pl.r.NormFloat64()-sigma*sigma/2), 1000)
}

func (pl *planner) misc() {
	for _, p := range docFiles {
		pl.file(p, 2*kib+pl.r.Int64N(60*kib), 0o644, pl.mtime())
	}
	for _, p := range toolFiles {
		pl.file(p, 1*kib+pl.r.Int64N(8*kib), 0o755, pl.mtime())
	}
	for _, p := range traceFiles {
		pl.file(p, traceSize(pl.r), 0o644, pl.recent(hour))
	}
	for _, l := range topLinks {
		pl.links = append(pl.links, linkSpec{path: l[0], target: l[1], mtime: pl.mtime()})
	}
	for _, l := range suiteLinks {
		pl.dir(parentOf(l[0]))
		pl.links = append(pl.links, linkSpec{path: l[0], target: l[1], mtime: pl.mtime()})
	}
}

// debian plans about n package files in pool/, cfg.Big huge ones among
// them, and the dists/ indexes that list them.
func (pl *planner) debian(n int, cfg Config) {
	seen := map[string]bool{}
	debs := map[string]int{} // by component
	newSource := func() (dir, src string) {
		src = unique(seen, func() string { return debSource(pl.r) })
		comp := "main"
		if pl.r.IntN(100) < 7 {
			comp = "contrib"
		}
		return "pool/" + comp + "/" + debPrefix(src) + "/" + src, src
	}
	bigMin, bigMax := cfg.BigMin, cfg.BigMax
	if total := int64(cfg.Big) * (bigMin + bigMax) / 2; cfg.Big > 0 && total > cfg.Bytes/2 {
		// The huge files may take half the bytes asked for, not more.
		f := float64(cfg.Bytes/2) / float64(total)
		bigMin, bigMax = int64(float64(bigMin)*f), int64(float64(bigMax)*f)
	}
	for i := 0; i < cfg.Big; i++ {
		dir, src := newSource()
		size := bigMin + pl.r.Int64N(bigMax-bigMin+1)
		pl.file(debPath(dir, src+"-dbgsym", debVersion(pl.r), "amd64"), size, 0o644, pl.mtime())
		debs[strings.Split(dir, "/")[1]]++
	}
	for files := 0; files < n; {
		dir, src := newSource()
		bins, archs := debBinaries(pl.r, src)
		nv := 1
		if x := pl.r.IntN(100); x >= 95 {
			nv = 3
		} else if x >= 70 {
			nv = 2
		}
		versions := []string{debVersion(pl.r)}
		for len(versions) < nv {
			versions = append(versions, bumpDebVersion(pl.r, versions[len(versions)-1]))
		}
		times := make([]int64, nv)
		for i := range times {
			times[i] = pl.mtime()
		}
		slices.Sort(times)
		for b, bin := range bins {
			w := pl.heavyTail(1.9)
			if strings.HasSuffix(bin, "-dbgsym") {
				w *= 4
			}
			for v, ver := range versions {
				pl.pkgFile(debPath(dir, bin, ver, archs[b]), w*(0.9+0.2*pl.r.Float64()), times[v])
				files++
				debs[strings.Split(dir, "/")[1]]++
			}
		}
	}
	pl.dir("pool/non-free-firmware")
	for _, suite := range suites {
		age := 6 * hour
		if suite == "bookworm" {
			age = 120 * day // updated at point releases only
		}
		t := pl.recent(age)
		for _, comp := range components {
			sizes := debIndexSizes(pl.r, suite, debs[comp])
			for i, name := range indexNames {
				pl.file(binaryDir(suite, comp)+"/"+name, sizes[i], 0o644, t)
			}
		}
		rel, inRel := releaseSizes(pl.r)
		pl.file("dists/"+suite+"/Release", rel, 0o644, t)
		pl.file("dists/"+suite+"/InRelease", inRel, 0o644, t)
	}
}

// cran plans the flat directory: n current source packages, archived older
// versions of some of them, and the index.
func (pl *planner) cran(n, archived int) {
	seen := map[string]bool{}
	names := make([]string, n)
	for i := range names {
		names[i] = unique(seen, func() string { return cranName(pl.r) })
	}
	// The archived versions belong to two thirds as many packages.
	old := map[int]int{}
	if archived > 0 {
		pkgs := max(1, archived*2/3)
		for range archived {
			old[pl.r.IntN(pkgs)*n/pkgs]++
		}
	}
	for i, name := range names {
		ver := cranVersion(pl.r)
		w := pl.heavyTail(1.5)
		t := pl.mtime()
		for range old[i] {
			at := t - pl.r.Int64N(3*365*day)
			if at < epoch {
				at = epoch + pl.r.Int64N(day)
			}
			pl.pkgFile(cranArchive+"/"+name+"/"+name+"_"+ver+".tar.gz", w*(0.8+0.2*pl.r.Float64()), at)
			ver = bumpVersion(pl.r, ver)
		}
		pl.pkgFile(cranDir+"/"+name+"_"+ver+".tar.gz", w, t)
	}
	sizes := cranIndexSizes(pl.r, n)
	t := pl.recent(6 * hour)
	for i, name := range cranIndexNames {
		pl.file(cranDir+"/"+name, sizes[i], 0o644, t)
	}
	pl.dir(cranArchive)
}

// pypi plans about n files: projects with releases of an sdist and wheels,
// and their simple indexes.
func (pl *planner) pypi(n int) {
	seen := map[string]bool{}
	projects := 0
	for files := 0; files < n; projects++ {
		name := unique(seen, func() string { return pypiName(pl.r) })
		var tags []string
		for _, t := range wheelTags {
			if pl.r.IntN(3) == 0 {
				tags = append(tags, t)
			}
		}
		nv := 1 + min(pl.r.IntN(4), pl.r.IntN(4))
		ver := semver(pl.r)
		w := pl.heavyTail(1.7) * 0.8
		count := 0
		var last int64
		for v := 0; v < nv; v++ {
			t := pl.mtime()
			last = max(last, t)
			for _, f := range pypiFileNames(name, ver, tags) {
				pl.pkgFile(pypiFilePath(pl.domain, f), w*(0.7+0.6*pl.r.Float64()), t)
				count++
			}
			ver = bumpVersion(pl.r, ver)
		}
		pl.file(pypiSimple+"/"+name+"/index.html", pypiProjectIndexSize(pl.r, count), 0o644, last)
		files += count + 1
	}
	if projects > 0 {
		pl.file(pypiSimple+"/index.html", pypiRootIndexSize(pl.r, projects), 0o644, pl.recent(hour))
	}
}

// npm plans about n files: packages with a tarball per version and their
// metadata document.
func (pl *planner) npm(n int) {
	seen := map[string]bool{}
	for files := 0; files < n; {
		name := unique(seen, func() string { return npmName(pl.r) })
		dir := npmDir + "/" + name
		nv := 1 + min(pl.r.IntN(8), pl.r.IntN(8))
		ver := npmVersion(pl.r)
		w := pl.heavyTail(1.4) * 0.25
		var last int64
		for v := 0; v < nv; v++ {
			t := pl.mtime()
			last = max(last, t)
			pl.pkgFile(npmTarball(dir, name, ver), w*(0.8+0.4*pl.r.Float64()), t)
			ver = bumpVersion(pl.r, ver)
		}
		pl.file(dir+"/index.json", npmIndexSize(pl.r, nv), 0o644, last)
		files += nv + 1
	}
}

// scale turns the package files' weights into sizes that, with the fixed
// sizes, add up to about total bytes.
func (pl *planner) scale(total int64) {
	var fixed int64
	var weights float64
	for i, f := range pl.files {
		if pl.weight[i] > 0 {
			weights += pl.weight[i]
		} else {
			fixed += f.size
		}
	}
	budget := float64(max(total-fixed, 0))
	for i, w := range pl.weight {
		if w > 0 {
			pl.files[i].size = max(1, int64(math.Round(w*budget/weights)))
		}
	}
}

// lsLR is planned last: its size follows the number of entries.
func (pl *planner) lsLR() {
	entries := len(pl.dirs) + len(pl.files) + len(pl.links) + 1
	pl.file(lsLR, lsLRSize(pl.r, entries), 0o644, pl.recent(hour))
}

// finish sorts the directories and gives each a mode and an mtime: a
// little after the newest entry in it, as the last change to it left it.
func (pl *planner) finish() *plan {
	newest := map[string]int64{}
	bump := func(p string, t int64) {
		d := parentOf(p)
		newest[d] = max(newest[d], t)
	}
	for _, f := range pl.files {
		bump(f.path, f.mtime)
	}
	for _, l := range pl.links {
		bump(l.path, l.mtime)
	}
	paths := make([]string, 0, len(pl.dirs))
	for p := range pl.dirs {
		paths = append(paths, p)
	}
	// Deepest first for the mtimes; parents first in the plan. Sorted
	// first so that the draws come in a fixed order.
	sort.Strings(paths)
	byDepth := slices.Clone(paths)
	sort.SliceStable(byDepth, func(i, j int) bool { return depth(byDepth[i]) > depth(byDepth[j]) })
	for _, p := range byDepth {
		d := pl.dirs[p]
		if t, ok := newest[p]; ok {
			d.mtime = min(t+pl.r.Int64N(hour), pl.now)
		} else {
			d.mtime = pl.mtime()
		}
		if p != "." {
			bump(p, d.mtime)
		}
	}
	out := &plan{domain: pl.domain, files: pl.files, links: pl.links}
	for _, p := range paths {
		out.dirs = append(out.dirs, *pl.dirs[p])
	}
	return out
}

func depth(p string) int {
	if p == "." {
		return 0
	}
	return strings.Count(p, "/") + 1
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
