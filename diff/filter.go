package diff

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// IgnoreFile is read from the source's top directory when present.
const IgnoreFile = ".ipfs-syncignore"

// Filter decides which entries a walk includes.
type Filter struct {
	Hidden bool   // include dotfiles (rsync does; kubo needs -H)
	Rules  []Rule // first match wins; no match includes
}

// Rule is one include or exclude pattern, rsync/gitignore style: a pattern
// without a slash matches a name at any depth, one with a slash matches the
// path from the source's top ("/" at the start anchors it there), a
// trailing slash matches directories only, "*" and "?" stay within a path
// component, "**" crosses them.
type Rule struct {
	Include bool
	Pattern string
	re      *regexp.Regexp
	dirOnly bool
	path    bool
}

// ParseRule compiles one pattern.
func ParseRule(pattern string, include bool) (Rule, error) {
	r := Rule{Include: include, Pattern: pattern}
	p := pattern
	if strings.HasSuffix(p, "/") {
		r.dirOnly, p = true, strings.TrimRight(p, "/")
	}
	if strings.Contains(p, "/") {
		r.path, p = true, strings.TrimPrefix(p, "/")
	}
	if p == "" {
		return r, fmt.Errorf("empty pattern %q", pattern)
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*':
			if i+1 < len(p) && p[i+1] == '*' {
				i++
				if i+1 < len(p) && p[i+1] == '/' {
					i++
					b.WriteString("(?:.*/)?") // "**/" matches zero or more directories
				} else {
					b.WriteString(".*")
				}
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		case '[':
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				return r, fmt.Errorf("pattern %q: unclosed [", pattern)
			}
			class := p[i+1 : i+j]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + class + "]")
			i += j
		case '\\':
			if i+1 < len(p) {
				i++
				b.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return r, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	r.re = re
	return r, nil
}

func (r Rule) matches(rel, name string, isDir bool) bool {
	if r.dirOnly && !isDir {
		return false
	}
	if r.path {
		return r.re.MatchString(rel)
	}
	return r.re.MatchString(name)
}

// Include reports whether the entry at rel (slash separated, relative to
// the source's top), called name, is walked.
func (f Filter) Include(rel, name string, isDir bool) bool {
	if !f.Hidden && strings.HasPrefix(name, ".") {
		return false
	}
	for _, r := range f.Rules {
		if r.matches(rel, name, isDir) {
			return r.Include
		}
	}
	return true
}

// needsStat reports whether deciding on name may depend on its type.
func (f Filter) needsStat() bool {
	for _, r := range f.Rules {
		if r.dirOnly {
			return true
		}
	}
	return false
}

// ReadRules reads patterns from a file, one per line: blank lines and
// lines starting with '#' are skipped, "!PATTERN" includes, anything else
// excludes (the format of .ipfs-syncignore and --exclude-from).
func ReadRules(path string) ([]Rule, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Rule
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		include := strings.HasPrefix(line, "!")
		r, err := ParseRule(strings.TrimPrefix(line, "!"), include)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// WithIgnoreFile appends the rules of src's .ipfs-syncignore, if any.
func (f Filter) WithIgnoreFile(src string) (Filter, error) {
	rules, err := ReadRules(filepath.Join(src, IgnoreFile))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return f, nil // none, or the source is a single file
	}
	if err != nil {
		return f, err
	}
	f.Rules = append(append([]Rule{}, f.Rules...), rules...)
	return f, nil
}
