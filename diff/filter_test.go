package diff

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestFilterRules(t *testing.T) {
	rule := func(p string, inc bool) Rule {
		r, err := ParseRule(p, inc)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	cases := []struct {
		name  string
		rules []Rule
		rel   string
		dir   bool
		want  bool
	}{
		{"no rules", nil, "a/b.deb", false, true},
		{"name glob at any depth", []Rule{rule("*.tmp", false)}, "pool/x/a.tmp", false, false},
		{"name glob spares others", []Rule{rule("*.tmp", false)}, "pool/x/a.deb", false, true},
		{"anchored", []Rule{rule("/tmp", false)}, "tmp", true, false},
		{"anchored only at top", []Rule{rule("/tmp", false)}, "a/tmp", true, true},
		{"dir only skips files", []Rule{rule("cache/", false)}, "a/cache", false, true},
		{"dir only", []Rule{rule("cache/", false)}, "a/cache", true, false},
		{"star stays in component", []Rule{rule("pool/*.deb", false)}, "pool/main/a.deb", false, true},
		{"double star crosses", []Rule{rule("pool/**/*.deb", false)}, "pool/main/h/a.deb", false, false},
		{"double star matches zero dirs", []Rule{rule("pool/**/*.deb", false)}, "pool/a.deb", false, false},
		{"first match wins", []Rule{rule("keep.tmp", true), rule("*.tmp", false)}, "x/keep.tmp", false, true},
		{"question mark", []Rule{rule("a?c", false)}, "abc", false, false},
		{"class", []Rule{rule("[ab].txt", false)}, "b.txt", false, false},
		{"negated class", []Rule{rule("[!ab].txt", false)}, "b.txt", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := Filter{Hidden: true, Rules: tc.rules}
			if got := f.Include(tc.rel, filepath.Base(tc.rel), tc.dir); got != tc.want {
				t.Fatalf("Include(%q) = %v, want %v", tc.rel, got, tc.want)
			}
		})
	}
}

func TestIgnoreFileAndReadDir(t *testing.T) {
	src := t.TempDir()
	for _, p := range []string{"a.deb", "b.tmp", "keep.tmp", ".hidden", "cache/x", "sub/cache/y", "sub/z"} {
		full := filepath.Join(src, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, nil, 0o644)
	}
	os.WriteFile(filepath.Join(src, IgnoreFile), []byte("# mirror junk\n!keep.tmp\n*.tmp\ncache/\n"), 0o644)
	f, err := Filter{Hidden: false}.WithIgnoreFile(src)
	if err != nil {
		t.Fatal(err)
	}
	names := func(dir, rel string) []string {
		es, err := readDir(dir, rel, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Name)
		}
		return out
	}
	if got, want := names(src, ""), []string{"a.deb", "keep.tmp", "sub"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("top: %v, want %v", got, want)
	}
	if got, want := names(filepath.Join(src, "sub"), "sub"), []string{"z"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("sub: %v, want %v", got, want)
	}
}
