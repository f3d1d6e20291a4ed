package mirrorgen

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Names are made of syllables so that they read like package names and
// sort and collide the way real ones do (shared prefixes, similar lengths).
var (
	onsets = []string{"b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "qu", "r", "s", "t", "v", "w", "x", "z",
		"br", "ch", "cl", "dr", "fl", "gr", "kr", "pl", "pr", "sh", "st", "th", "tr"}
	vowels = []string{"a", "e", "i", "o", "u", "a", "e", "i", "o", "y", "ai", "ou"}
	codas  = []string{"", "", "", "", "n", "r", "s", "t", "l", "x", "ng", "m"}
)

func word(r *rand.Rand, minSyl, maxSyl int) string {
	var b strings.Builder
	n := minSyl + r.IntN(maxSyl-minSyl+1)
	for i := 0; i < n; i++ {
		b.WriteString(onsets[r.IntN(len(onsets))])
		b.WriteString(vowels[r.IntN(len(vowels))])
		if i == n-1 || r.IntN(4) == 0 {
			b.WriteString(codas[r.IntN(len(codas))])
		}
	}
	return b.String()
}

// unique draws names from gen until one is not in seen, and records it.
func unique(seen map[string]bool, gen func() string) string {
	for i := 0; ; i++ {
		n := gen()
		if i > 20 {
			// A crowded name space: a numeric tail always finds room.
			n = fmt.Sprintf("%s%d", n, i)
		}
		if !seen[n] {
			seen[n] = true
			return n
		}
	}
}

// debSource is a Debian source package name.
func debSource(r *rand.Rand) string {
	w := word(r, 1, 3)
	switch x := r.IntN(100); {
	case x < 22:
		return "lib" + w
	case x < 30:
		return "python-" + w
	case x < 35:
		return "golang-github-" + word(r, 1, 2) + "-" + w
	case x < 40:
		return "node-" + w
	case x < 44:
		return "r-cran-" + w
	case x < 50:
		return w + "-" + word(r, 1, 2)
	}
	return w
}

// debPrefix is the pool directory of a source: its first letter, or
// "lib" and the next one for libraries.
func debPrefix(src string) string {
	if strings.HasPrefix(src, "lib") && len(src) > 3 {
		return src[:4]
	}
	return src[:1]
}

// debBinaries names the binary packages a source builds, with their
// architectures.
func debBinaries(r *rand.Rand, src string) (names, archs []string) {
	add := func(n, a string) { names, archs = append(names, n), append(archs, a) }
	switch {
	case strings.HasPrefix(src, "lib"):
		add(src+strconv.Itoa(1+r.IntN(12)), "amd64")
		add(src+"-dev", "amd64")
		if r.IntN(3) == 0 {
			add(src+"-doc", "all")
		}
	case strings.HasPrefix(src, "python-"):
		add("python3-"+strings.TrimPrefix(src, "python-"), "all")
		if r.IntN(4) == 0 {
			add("python-"+strings.TrimPrefix(src, "python-")+"-doc", "all")
		}
	case strings.HasPrefix(src, "golang-"), strings.HasPrefix(src, "node-"), strings.HasPrefix(src, "r-cran-"):
		if strings.HasPrefix(src, "golang-") {
			add(src+"-dev", "all")
		} else {
			add(src, "all")
		}
	default:
		add(src, "amd64")
		switch x := r.IntN(10); {
		case x < 3:
			add(src+"-data", "all")
		case x < 5:
			add(src+"-utils", "amd64")
			add(src+"-doc", "all")
		case x < 6:
			add(src+"-common", "all")
			add(src+"-dbgsym", "amd64")
		}
	}
	return names, archs
}

// debVersion is an upstream version and a Debian revision, with the
// suffixes real archives carry.
func debVersion(r *rand.Rand) string {
	v := fmt.Sprintf("%d.%d", r.IntN(8), r.IntN(30))
	if r.IntN(2) == 0 {
		v += fmt.Sprintf(".%d", r.IntN(20))
	}
	switch x := r.IntN(20); {
	case x < 2:
		v += "+dfsg"
	case x < 3:
		v += "+ds"
	case x < 4:
		v += fmt.Sprintf("~rc%d", 1+r.IntN(3))
	}
	rev := strconv.Itoa(1 + r.IntN(6))
	if r.IntN(10) == 0 {
		rev += fmt.Sprintf("+deb12u%d", 1+r.IntN(5))
	}
	return v + "-" + rev
}

// cranName is an R package name: mixed case, sometimes a dot or a digit.
func cranName(r *rand.Rand) string {
	w := word(r, 1, 3)
	switch x := r.IntN(10); {
	case x < 4:
		w = strings.ToUpper(w[:1]) + w[1:]
	case x < 5:
		w += "." + word(r, 1, 2)
	case x < 6:
		w += strconv.Itoa(1 + r.IntN(9))
	case x < 7:
		w = strings.ToUpper(w[:1]) + w[1:] + strings.ToUpper(word(r, 1, 1))
	}
	return w
}

// cranVersion is "1.2-3" or "0.4.1".
func cranVersion(r *rand.Rand) string {
	if r.IntN(2) == 0 {
		return fmt.Sprintf("%d.%d-%d", r.IntN(4), r.IntN(20), r.IntN(12))
	}
	return fmt.Sprintf("%d.%d.%d", r.IntN(4), r.IntN(20), r.IntN(12))
}

// pypiName is a normalized project name ("foo-bar"); its files use
// underscores ("foo_bar-1.0.tar.gz").
func pypiName(r *rand.Rand) string {
	w := word(r, 1, 3)
	switch x := r.IntN(10); {
	case x < 3:
		w += "-" + word(r, 1, 2)
	case x < 4:
		w = "py" + w
	case x < 5:
		w = "django-" + w
	}
	return w
}

func semver(r *rand.Rand) string {
	return fmt.Sprintf("%d.%d.%d", r.IntN(5), r.IntN(25), r.IntN(15))
}

var wheelTags = []string{
	"py3-none-any",
	"cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64",
	"cp311-cp311-win_amd64",
	"cp312-cp312-macosx_11_0_arm64",
	"cp313-cp313-musllinux_1_2_aarch64",
}

// npmName is a package name, sometimes scoped ("@scope/name").
func npmName(r *rand.Rand) string {
	w := word(r, 1, 3)
	if r.IntN(3) == 0 {
		w += "-" + word(r, 1, 2)
	}
	if r.IntN(8) == 0 {
		return "@" + word(r, 1, 2) + "/" + w
	}
	return w
}

// npmVersion is a semantic version, sometimes a prerelease.
func npmVersion(r *rand.Rand) string {
	v := semver(r)
	if r.IntN(12) == 0 {
		v += fmt.Sprintf("-beta.%d", r.IntN(5))
	}
	return v
}

// bumpDebVersion returns a Debian version after v: a new revision
// (1.2-3 -> 1.2-4, 1.2-3+deb12u1 -> 1.2-3+deb12u2) or a new upstream
// release (1.2-3 -> 1.3-1).
func bumpDebVersion(r *rand.Rand, v string) string {
	i := strings.LastIndexByte(v, '-')
	if i < 0 {
		return bumpLast(v) + "-1"
	}
	up, rev := v[:i], v[i+1:]
	if r.IntN(2) == 0 {
		return up + "-" + bumpLast(rev)
	}
	core, suffix := splitCore(up)
	return bumpCore(r, core) + suffix + "-1"
}

// bumpVersion returns a CRAN, PyPI or npm version after v: the last number
// incremented (1.2-3 -> 1.2-4, 1.2.3 -> 1.2.4), or a minor release
// (1.2.3 -> 1.3.0; a prerelease tag is dropped, 1.2-3 -> 1.3-0).
func bumpVersion(r *rand.Rand, v string) string {
	if r.IntN(5) < 3 {
		return bumpLast(v)
	}
	core, rest := splitCore(v)
	if strings.ContainsFunc(rest, func(c rune) bool { return c >= 'a' && c <= 'z' }) {
		rest = ""
	}
	return bumpCore(r, core) + zeroNumbers(rest)
}

// splitCore splits v after its leading dotted numbers ("1.2.3").
func splitCore(v string) (core, rest string) {
	i := 0
	for i < len(v) && (isDigit(v[i]) || v[i] == '.' && i+1 < len(v) && isDigit(v[i+1])) {
		i++
	}
	return v[:i], v[i:]
}

// bumpCore increments the last or, when there are several, the
// second-to-last number of a dotted core, zeroing the numbers after it.
func bumpCore(r *rand.Rand, core string) string {
	if core == "" {
		return "1"
	}
	parts := strings.Split(core, ".")
	i := len(parts) - 1
	if i > 0 && r.IntN(2) == 0 {
		i--
	}
	n, _ := strconv.Atoi(parts[i])
	parts[i] = strconv.Itoa(n + 1)
	for j := i + 1; j < len(parts); j++ {
		parts[j] = "0"
	}
	return strings.Join(parts, ".")
}

// bumpLast increments the last number in v, or appends ".1".
func bumpLast(v string) string {
	end := len(v)
	for end > 0 && !isDigit(v[end-1]) {
		end--
	}
	if end == 0 {
		return v + ".1"
	}
	start := end
	for start > 0 && isDigit(v[start-1]) {
		start--
	}
	n, _ := strconv.Atoi(v[start:end])
	return v[:start] + strconv.Itoa(n+1) + v[end:]
}

// zeroNumbers sets every number in s to 0.
func zeroNumbers(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			b.WriteByte(s[i])
			continue
		}
		b.WriteByte('0')
		for i+1 < len(s) && isDigit(s[i+1]) {
			i++
		}
	}
	return b.String()
}

// compareVersions orders versions naturally: runs of digits by value,
// everything else bytewise. It is the order bumpVersion moves forward in.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		if da && db {
			na, ra := splitRun(a, isDigit)
			nb, rb := splitRun(b, isDigit)
			na, nb = strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(na) != len(nb) {
				return cmpInt(len(na), len(nb))
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return cmpInt(int(a[0]), int(b[0]))
		}
		a, b = a[1:], b[1:]
	}
	return cmpInt(len(a), len(b))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func splitRun(s string, f func(byte) bool) (run, rest string) {
	i := 0
	for i < len(s) && f(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
