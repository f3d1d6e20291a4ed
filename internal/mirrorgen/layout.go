package mirrorgen

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"math"
	"math/rand/v2"
	"path"
	"strings"
)

// The layout of a generated mirror:
//
//	pool/{main,contrib}/<prefix>/<source>/<package>_<version>_<arch>.deb
//	pool/non-free-firmware/                                  empty
//	dists/{bookworm,trixie,sid}/{Release,InRelease}
//	dists/<suite>/<component>/binary-amd64/{Packages,Packages.gz,Packages.xz,Release}
//	dists/stable -> bookworm, testing -> trixie, unstable -> sid
//	dists/oldstable -> bullseye                              dangling
//	cran/src/contrib/<Pkg>_<version>.tar.gz                  the huge flat directory
//	cran/src/contrib/{PACKAGES,PACKAGES.gz,PACKAGES.rds}
//	cran/src/contrib/Archive/<Pkg>/<Pkg>_<old version>.tar.gz
//	cran/bin/windows/contrib/<R version>/<Pkg>_<version>.zip  added by cycles
//	pypi/simple/index.html, pypi/simple/<project>/index.html
//	pypi/packages/<2 hex>/<2 hex>/<60 hex>/<project>-<version>{.tar.gz,-<tag>.whl}
//	npm/[@<scope>/]<name>/index.json, npm/[@<scope>/]<name>/-/<name>-<version>.tgz
//	project/trace/*, doc/*, tools/*.sh, README, ls-lR.gz
//	README.txt -> README, debian -> .                        a loop
//
// No name starts with a dot: kubo's `ipfs add -r` skips hidden files unless
// told otherwise.

var (
	suites     = []string{"bookworm", "trixie", "sid"}
	components = []string{"main", "contrib", "non-free-firmware"}
	suiteLinks = [][2]string{
		{"dists/stable", "bookworm"},
		{"dists/testing", "trixie"},
		{"dists/unstable", "sid"},
		{"dists/oldstable", "bullseye"},
	}
	topLinks = [][2]string{
		{"README.txt", "README"},
		{"debian", "."},
	}
	traceFiles = []string{"project/trace/master", "project/trace/ftp-master.debian.org", "project/trace/mirror.example.org"}
	docFiles   = []string{"README", "doc/FAQ", "doc/mirror-list.txt", "doc/social-contract.txt", "doc/debian-manifesto"}
	toolFiles  = []string{"tools/check-release.sh", "tools/mirror-sync.sh"}
)

const (
	cranDir     = "cran/src/contrib"
	cranArchive = cranDir + "/Archive"
	cranBinDir  = "cran/bin/windows/contrib"
	pypiSimple  = "pypi/simple"
	pypiPackage = "pypi/packages"
	npmDir      = "npm"
	lsLR        = "ls-lR.gz"
)

// indexNames are the files of one binary-amd64 directory.
var indexNames = []string{"Packages", "Packages.gz", "Packages.xz", "Release"}

// cranIndexNames are the index files of a CRAN package directory.
var cranIndexNames = []string{"PACKAGES", "PACKAGES.gz", "PACKAGES.rds"}

func binaryDir(suite, comp string) string {
	return "dists/" + suite + "/" + comp + "/binary-amd64"
}

// suiteShare is the part of the pool a suite's Packages lists: stable
// lacks what came after it.
var suiteShare = map[string]float64{"bookworm": 0.85, "trixie": 0.95, "sid": 1}

// jitter scales n by a factor within ±f.
func jitter(r *rand.Rand, n float64, f float64) int64 {
	return int64(math.Round(n * (1 - f + 2*f*r.Float64())))
}

// debIndexSizes are the sizes of Packages, Packages.gz, Packages.xz and
// Release for a component whose pool holds debs packages. An empty
// component has an empty Packages, as in a real archive. The packages of
// the big presets are many and small, so Packages stops growing at about
// the size of Debian's own for unstable: otherwise every cycle would
// rewrite gigabytes of index for megabytes of packages.
func debIndexSizes(r *rand.Rand, suite string, debs int) [4]int64 {
	if debs == 0 {
		return [4]int64{0, 20, 32, jitter(r, 140, 0.1)}
	}
	p := jitter(r, min(450*float64(debs), 32*mib)*suiteShare[suite], 0.02) + 1
	return [4]int64{p, jitter(r, float64(p)/4, 0.05) + 20, jitter(r, float64(p)/5.2, 0.05) + 32, jitter(r, 140, 0.1)}
}

// releaseSizes are the sizes of a suite's Release and InRelease (the same
// list of index hashes, signed inline).
func releaseSizes(r *rand.Rand) (release, inRelease int64) {
	release = jitter(r, 700+float64(len(components)*len(indexNames))*195, 0.03)
	return release, release + jitter(r, 830, 0.02)
}

// cranIndexSizes are the sizes of PACKAGES, PACKAGES.gz and PACKAGES.rds
// for n packages.
func cranIndexSizes(r *rand.Rand, n int) [3]int64 {
	p := jitter(r, 400*float64(n)+200, 0.02)
	return [3]int64{p, jitter(r, float64(p)/4.3, 0.05) + 20, jitter(r, float64(p)/4.6, 0.05) + 40}
}

func pypiRootIndexSize(r *rand.Rand, projects int) int64 {
	return jitter(r, 200+62*float64(projects), 0.01)
}

func pypiProjectIndexSize(r *rand.Rand, files int) int64 {
	return jitter(r, 300+225*float64(files), 0.03)
}

func npmIndexSize(r *rand.Rand, versions int) int64 {
	return jitter(r, 1200+950*float64(versions), 0.05)
}

func traceSize(r *rand.Rand) int64 { return 150 + r.Int64N(750) }

// lsLRSize is ls-lR.gz for a tree of that many entries.
func lsLRSize(r *rand.Rand, entries int) int64 { return jitter(r, 15*float64(entries)+100, 0.02) }

// debFile is a parsed pool/<comp>/<prefix>/<src>/<pkg>_<ver>_<arch>.deb.
type debFile struct {
	dir            string // pool/<comp>/<prefix>/<src>
	comp           string
	pkg, ver, arch string
}

func parseDeb(p string) (debFile, bool) {
	parts := strings.Split(p, "/")
	if len(parts) != 5 || parts[0] != "pool" || !strings.HasSuffix(parts[4], ".deb") {
		return debFile{}, false
	}
	f := strings.Split(strings.TrimSuffix(parts[4], ".deb"), "_")
	if len(f) != 3 {
		return debFile{}, false
	}
	return debFile{dir: path.Dir(p), comp: parts[1], pkg: f[0], ver: f[1], arch: f[2]}, true
}

func debPath(dir, pkg, ver, arch string) string {
	return dir + "/" + pkg + "_" + ver + "_" + arch + ".deb"
}

// parseCRAN splits "<Pkg>_<ver><ext>" (a source tarball or binary zip).
func parseCRAN(name, ext string) (pkg, ver string, ok bool) {
	if !strings.HasSuffix(name, ext) {
		return "", "", false
	}
	pkg, ver, ok = strings.Cut(strings.TrimSuffix(name, ext), "_")
	return pkg, ver, ok && pkg != "" && ver != ""
}

// pypiFileNames are the files of one release: an sdist and its wheels.
func pypiFileNames(project, ver string, tags []string) []string {
	n := strings.ReplaceAll(project, "-", "_")
	names := []string{n + "-" + ver + ".tar.gz"}
	for _, t := range tags {
		names = append(names, n+"-"+ver+"-"+t+".whl")
	}
	return names
}

// parsePyPIFile returns the normalized project, version and wheel tag
// ("" for an sdist) of a distribution file name.
func parsePyPIFile(name string) (norm, ver, tag string, ok bool) {
	if base, found := strings.CutSuffix(name, ".tar.gz"); found {
		norm, ver, ok = strings.Cut(base, "-")
		return norm, ver, "", ok
	}
	base, found := strings.CutSuffix(name, ".whl")
	if !found {
		return "", "", "", false
	}
	f := strings.SplitN(base, "-", 3)
	if len(f) != 3 {
		return "", "", "", false
	}
	return f[0], f[1], f[2], true
}

// pypiFilePath places a distribution file under a content-address-like
// directory, as PyPI does (there a BLAKE2 of the file; here a hash of the
// name and the tree's seed, so that paths are known before contents).
func pypiFilePath(domain [32]byte, name string) string {
	h := sha256.New()
	h.Write(domain[:])
	h.Write([]byte("pypi\x00" + name))
	x := hex.EncodeToString(h.Sum(nil))[:64]
	return pypiPackage + "/" + x[:2] + "/" + x[2:4] + "/" + x[4:] + "/" + name
}

func npmTarball(pkgDir, name, ver string) string {
	return pkgDir + "/-/" + path.Base(name) + "-" + ver + ".tgz"
}

// parseNPMTarball returns the package directory and version of
// npm/[@scope/]<name>/-/<name>-<ver>.tgz.
func parseNPMTarball(p string) (pkgDir, ver string, ok bool) {
	dir, file := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	if path.Base(dir) != "-" || !strings.HasSuffix(file, ".tgz") {
		return "", "", false
	}
	pkgDir = path.Dir(dir)
	depth := strings.Count(pkgDir, "/")
	if !strings.HasPrefix(pkgDir, npmDir+"/") || depth < 1 || depth > 2 {
		return "", "", false
	}
	ver, ok = strings.CutPrefix(strings.TrimSuffix(file, ".tgz"), path.Base(pkgDir)+"-")
	return pkgDir, ver, ok && ver != ""
}

// fileMode: most package files 0644, a few 0755 or 0600, as on real
// mirrors where an upload kept a stray mode.
func fileMode(r *rand.Rand) fs.FileMode {
	switch x := r.IntN(1000); {
	case x < 12:
		return 0o755
	case x < 14:
		return 0o600
	}
	return 0o644
}
