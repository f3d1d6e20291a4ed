//go:build e2e

package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// repoDigest hashes every file of a repository (names, sizes, contents).
func repoDigest(t *testing.T, repo string) string {
	t.Helper()
	h := sha256.New()
	filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(repo, p)
		h.Write([]byte(rel + "\x00"))
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			h.Write(b)
		}
		return nil
	})
	return string(h.Sum(nil))
}

// changedPaths is the ground truth for `diff`: every path whose type,
// size, mode, mtime, content or link target differs between two trees; a
// whole added or removed subtree counts once, directories end in "/".
func changedPaths(t *testing.T, oldDir, newDir string) []string {
	t.Helper()
	type info struct {
		fi   fs.FileInfo
		path string
	}
	list := func(root string) map[string]info {
		m := map[string]info{}
		filepath.Walk(root, func(p string, fi fs.FileInfo, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, p)
			if rel != "." {
				m[filepath.ToSlash(rel)] = info{fi, p}
			}
			return nil
		})
		return m
	}
	o, n := list(oldDir), list(newDir)
	var out []string
	if a, b := stat(t, oldDir), stat(t, newDir); a.Mode() != b.Mode() || !a.ModTime().Equal(b.ModTime()) {
		out = append(out, "/")
	}
	name := func(rel string, fi fs.FileInfo) string {
		if fi.IsDir() {
			return rel + "/"
		}
		return rel
	}
	parentIn := func(m map[string]info, other map[string]info, rel string) bool {
		parent := filepath.Dir(rel)
		_, in := m[parent]
		_, inOther := other[parent]
		return parent != "." && in && !inOther
	}
	for rel, a := range o {
		b, ok := n[rel]
		switch {
		case !ok:
			if !parentIn(o, n, rel) {
				out = append(out, name(rel, a.fi))
			}
		case a.fi.Mode() != b.fi.Mode() || !a.fi.ModTime().Equal(b.fi.ModTime()) || (a.fi.Mode().IsRegular() && a.fi.Size() != b.fi.Size()):
			out = append(out, name(rel, b.fi))
		case a.fi.Mode().IsRegular():
			x, _ := os.ReadFile(a.path)
			y, _ := os.ReadFile(b.path)
			if !bytes.Equal(x, y) {
				out = append(out, rel)
			}
		case a.fi.Mode()&fs.ModeSymlink != 0:
			x, _ := os.Readlink(a.path)
			y, _ := os.Readlink(b.path)
			if x != y {
				out = append(out, rel)
			}
		}
	}
	for rel, b := range n {
		if _, ok := o[rel]; !ok && !parentIn(n, o, rel) {
			out = append(out, name(rel, b.fi))
		}
	}
	sort.Strings(out)
	return out
}

func stat(t *testing.T, p string) fs.FileInfo {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func itemPaths(out string) []string {
	var paths []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		p := strings.TrimSpace(line[2:])
		if i := strings.LastIndex(p, " ("); i >= 0 {
			p = p[:i]
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths
}

// TestCommands drives every repository command of the built binary
// through one publish cycle.
func TestCommands(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "mirror")
	copyTree(t, tinyTree.get(t), src)
	before := filepath.Join(dir, "before")
	copyTree(t, src, before)
	repo := filepath.Join(dir, "repo")

	res := ipfsSync(t, repo, "--json", "sync", src)
	var first struct {
		Root     string  `json:"root"`
		Previous *string `json:"previous"`
	}
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &first) != nil || first.Root == "" || first.Previous != nil {
		t.Fatalf("sync --json: %s", res)
	}

	next := filepath.Join(dir, "next")
	copyTree(t, src, next)
	publishCycle(t, next, 4)
	rsyncTree(t, next, src)
	want := changedPaths(t, before, src)

	t.Run("dry-run changes nothing in the repository", func(t *testing.T) {
		digest := repoDigest(t, repo)
		res := ipfsSync(t, repo, "sync", "-n", src)
		if res.Code != 0 {
			t.Fatal(res)
		}
		if repoDigest(t, repo) != digest {
			t.Fatal("--dry-run changed the repository")
		}
		if got := itemPaths(res.Stdout); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("dry run lists\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	res = ipfsSync(t, repo, "--json", "sync", src)
	var second struct {
		Root     string  `json:"root"`
		Previous *string `json:"previous"`
	}
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &second) != nil || second.Previous == nil || *second.Previous != first.Root {
		t.Fatalf("second sync --json: %s", res)
	}

	t.Run("diff lists exactly the changed paths", func(t *testing.T) {
		res := ipfsSync(t, repo, "diff", first.Root, second.Root)
		if res.Code != 0 {
			t.Fatal(res)
		}
		if got := itemPaths(res.Stdout); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("diff lists\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		res = ipfsSync(t, repo, "--json", "diff", first.Root, second.Root)
		for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
			var ch struct{ Change, Path string }
			if json.Unmarshal([]byte(line), &ch) != nil || ch.Path == "" {
				t.Fatalf("diff --json line %q", line)
			}
		}
	})

	t.Run("verify", func(t *testing.T) {
		if res := ipfsSync(t, repo, "verify", src, second.Root); res.Code != 0 {
			t.Fatalf("matching tree rejected: %s", res)
		}
		f := filepath.Join(src, "README")
		fi, _ := os.Stat(f)
		b, _ := os.ReadFile(f)
		b[len(b)/2] ^= 1
		os.WriteFile(f, b, fi.Mode())
		os.Chtimes(f, fi.ModTime(), fi.ModTime())
		res := ipfsSync(t, repo, "verify", "--checksum", src, second.Root)
		if res.Code != 1 || !strings.Contains(res.Stdout, "README") {
			t.Fatalf("one-byte change not caught: %s", res)
		}
		b[len(b)/2] ^= 1
		os.WriteFile(f, b, fi.Mode())
		os.Chtimes(f, fi.ModTime(), fi.ModTime())
	})

	t.Run("log and refs", func(t *testing.T) {
		res := ipfsSync(t, repo, "log", src)
		if res.Code != 0 || !strings.HasPrefix(res.Stdout, second.Root) || !strings.Contains(res.Stdout, first.Root) {
			t.Fatalf("log: %s", res)
		}
		if res := ipfsSync(t, repo, "refs"); res.Code != 0 || !strings.Contains(res.Stdout, src) {
			t.Fatalf("refs: %s", res)
		}
	})

	t.Run("gc keeps kept roots and frees the rest", func(t *testing.T) {
		res := ipfsSync(t, repo, "--json", "gc", "--keep", "1")
		var gc struct {
			Removed int `json:"blocks_removed"`
		}
		if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &gc) != nil || gc.Removed == 0 {
			t.Fatalf("gc: %s", res)
		}
		if res := ipfsSync(t, repo, "fsck"); res.Code != 0 {
			t.Fatalf("fsck after gc: %s", res)
		}
		if res := ipfsSync(t, repo, "export", second.Root, "--car", os.DevNull); res.Code != 0 {
			t.Fatalf("kept root incomplete: %s", res)
		}
		if res := ipfsSync(t, repo, "export", first.Root, "--car", os.DevNull); res.Code == 0 {
			t.Fatal("collected root still complete")
		}
	})

	t.Run("filters", func(t *testing.T) {
		os.WriteFile(filepath.Join(src, ".ipfs-syncignore"), []byte("dists/\n"), 0o644)
		res := ipfsSync(t, repo, "--json", "sync", "--name", "filtered", "--exclude", "*.gz", src)
		if res.Code != 0 {
			t.Fatal(res)
		}
		var s struct{ Root string }
		json.Unmarshal([]byte(res.Stdout), &s)
		ls := kuboListing(t, repo, s.Root)
		for _, p := range ls {
			if strings.HasSuffix(p, ".gz") || strings.HasPrefix(p, "dists") {
				t.Fatalf("%s was not excluded", p)
			}
		}
		if len(ls) == 0 {
			t.Fatal("empty listing")
		}
		os.Remove(filepath.Join(src, ".ipfs-syncignore"))
	})
}

// kuboListing lists every path under root by exporting it into a kubo
// repository and asking `ipfs refs`-free `ipfs ls -r`-like questions: the
// simplest route is `ipfs-sync diff` against the empty directory.
func kuboListing(t *testing.T, repo, root string) []string {
	t.Helper()
	empty := t.TempDir()
	res := ipfsSync(t, repo, "-q", "sync", "--name", "empty", empty)
	if res.Code != 0 {
		t.Fatal(res)
	}
	res = ipfsSync(t, repo, "diff", oneCID(t, res.Stdout), root)
	if res.Code != 0 {
		t.Fatal(res)
	}
	return itemPaths(res.Stdout)
}
