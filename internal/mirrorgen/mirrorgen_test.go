package mirrorgen

import (
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testPreset is small enough for unit tests and has every area.
var testPreset = Preset{Name: "test", Files: 250, Bytes: 2 * mib, Flat: 40, Big: 1, BigMin: 128 * kib, BigMax: 256 * kib}

func generate(t *testing.T, cfg Config) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mirror")
	if _, err := Generate(dir, cfg); err != nil {
		t.Fatal(err)
	}
	return dir
}

func fingerprint(t *testing.T, dir string) string {
	t.Helper()
	fp, err := Fingerprint(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

func mutate(t *testing.T, dir string, opt MutateOptions) Cycle {
	t.Helper()
	c, err := Mutate(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// copyTree copies src to dst keeping what Fingerprint covers, as cp -a.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	ents, err := scan(src)
	if err != nil {
		t.Fatal(err)
	}
	w := writer{root: dst}
	for _, e := range ents {
		from, to := filepath.Join(src, e.path), w.abs(e.path)
		switch e.kind {
		case 'd':
			err = os.Mkdir(to, 0o755)
		case 'l':
			err = os.Symlink(e.target, to)
		case 'f':
			var b []byte
			if b, err = os.ReadFile(from); err == nil {
				err = os.WriteFile(to, b, 0o600)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Reverse(ents) // children before their directory
	for _, e := range ents {
		if e.kind != 'l' {
			if err := chmodNoFollow(w.abs(e.path), e.mode); err != nil {
				t.Fatal(err)
			}
		}
		if err := setMtime(w.abs(e.path), e.mtime); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGenerateDeterministic(t *testing.T) {
	t.Parallel()
	base := fingerprint(t, generate(t, Config{Preset: testPreset, Seed: 1, Jobs: 1}))
	for _, tc := range []struct {
		name string
		cfg  Config
		same bool
	}{
		{"same seed, four writers", Config{Preset: testPreset, Seed: 1, Jobs: 4}, true},
		{"same seed, one writer", Config{Preset: testPreset, Seed: 1, Jobs: 1}, true},
		{"another seed", Config{Preset: testPreset, Seed: 2, Jobs: 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fingerprint(t, generate(t, tc.cfg)); (got == base) != tc.same {
				t.Fatalf("fingerprint %s, seed 1 with one writer %s: same=%v, want %v", got, base, got == base, tc.same)
			}
		})
	}
}

// TestMirrorShape: a tiny tree has what the importers must handle on a
// real mirror.
func TestMirrorShape(t *testing.T) {
	t.Parallel()
	p, err := PresetNamed("tiny")
	if err != nil {
		t.Fatal(err)
	}
	dir := generate(t, Config{Preset: p, Seed: 1})
	ents, err := scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := statsOf(ents)
	if st.Files < p.Files*9/10 || st.Files > p.Files*11/10 || st.Bytes < p.Bytes*9/10 || st.Bytes > p.Bytes*11/10 {
		t.Errorf("%d files of %d bytes, want about %d of %d", st.Files, st.Bytes, p.Files, p.Bytes)
	}
	if st.LargestDir != cranDir || st.LargestDirEntries != p.Flat {
		t.Errorf("largest directory %s with %d entries, want %s with %d", st.LargestDir, st.LargestDirEntries, cranDir, p.Flat)
	}
	links := map[string]string{}
	fileModes, dirModes := map[fs.FileMode]int{}, map[fs.FileMode]int{}
	var big int
	contents := map[[32]byte]string{}
	for _, e := range ents {
		if strings.HasPrefix(filepath.Base(e.path), ".") && e.path != "." {
			t.Errorf("%s: a dotfile (kubo skips them)", e.path)
		}
		if e.mtime < epoch || e.mtime >= time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano() {
			t.Errorf("%s: mtime %v out of 2015..2025", e.path, time.Unix(0, e.mtime))
		}
		switch e.kind {
		case 'l':
			links[e.path] = e.target
		case 'd':
			dirModes[e.mode]++
		case 'f':
			fileModes[e.mode]++
			if e.size >= p.BigMin {
				big++
			}
			b, err := os.ReadFile(filepath.Join(dir, e.path))
			if err != nil {
				t.Fatal(err)
			}
			if other, dup := contents[sha256.Sum256(b)]; dup && len(b) > 0 {
				t.Errorf("%s has the content of %s", e.path, other)
			}
			contents[sha256.Sum256(b)] = e.path
		}
	}
	for p, target := range map[string]string{"debian": ".", "dists/oldstable": "bullseye", "dists/stable": "bookworm", "README.txt": "README"} {
		if links[p] != target {
			t.Errorf("%s -> %q, want -> %q", p, links[p], target)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "dists/oldstable")); !os.IsNotExist(err) {
		t.Errorf("dists/oldstable should dangle: %v", err)
	}
	for _, m := range []fs.FileMode{0o644, 0o755, 0o600} {
		if fileModes[m] == 0 {
			t.Errorf("no file of mode %04o: %v", m, fileModes)
		}
	}
	for _, m := range []fs.FileMode{0o755, 0o775} {
		if dirModes[m] == 0 {
			t.Errorf("no directory of mode %04o: %v", m, dirModes)
		}
	}
	if big != p.Big {
		t.Errorf("%d files of at least %d bytes, want %d", big, p.BigMin, p.Big)
	}
	// Nanosecond mtimes on files, directories and symlinks.
	for _, kind := range []byte{'f', 'd', 'l'} {
		if !slices.ContainsFunc(ents, func(e entry) bool { return e.kind == kind && e.mtime%1000 != 0 }) {
			t.Errorf("no entry of type %c has a sub-microsecond mtime", kind)
		}
	}
	for _, area := range []string{"pool/main", "pool/contrib", "pool/non-free-firmware", "dists/sid/main/binary-amd64/Packages.xz", cranArchive, pypiSimple + "/index.html", pypiPackage, npmDir, lsLR} {
		if _, err := os.Lstat(filepath.Join(dir, area)); err != nil {
			t.Errorf("no %s: %v", area, err)
		}
	}
}

// TestMutateDeterministic: a cycle is a function of the tree and the seed,
// wherever the tree is and however many writers apply it.
func TestMutateDeterministic(t *testing.T) {
	t.Parallel()
	a := generate(t, Config{Preset: testPreset, Seed: 3})
	b := filepath.Join(t.TempDir(), "copy")
	copyTree(t, a, b)
	if fingerprint(t, a) != fingerprint(t, b) {
		t.Fatal("the copy differs before any cycle")
	}
	ca := mutate(t, a, MutateOptions{Seed: 5, Scale: 1, Jobs: 1})
	cb := mutate(t, b, MutateOptions{Seed: 5, Scale: 1, Jobs: 4})
	if ca != cb {
		t.Fatalf("cycles differ:\n%+v\n%+v", ca, cb)
	}
	if fa, fb := fingerprint(t, a), fingerprint(t, b); fa != fb {
		t.Fatalf("trees differ after the same cycle: %s, %s", fa, fb)
	}
	c := filepath.Join(t.TempDir(), "other")
	copyTree(t, a, c)
	mutate(t, a, MutateOptions{Seed: 6, Scale: 1})
	mutate(t, c, MutateOptions{Seed: 7, Scale: 1})
	if fingerprint(t, a) == fingerprint(t, c) {
		t.Fatal("cycles of different seeds gave the same tree")
	}
}

// TestCyclesCompose: a second cycle depends only on the tree the first
// left, not on where or when the first ran.
func TestCyclesCompose(t *testing.T) {
	t.Parallel()
	a := generate(t, Config{Preset: testPreset, Seed: 4})
	mutate(t, a, MutateOptions{Seed: 1, Scale: 1})
	b := filepath.Join(t.TempDir(), "copy")
	copyTree(t, a, b)
	mutate(t, a, MutateOptions{Seed: 2, Scale: 1})
	mutate(t, b, MutateOptions{Seed: 2, Scale: 1})

	c := generate(t, Config{Preset: testPreset, Seed: 4})
	mutate(t, c, MutateOptions{Seed: 1, Scale: 1})
	mutate(t, c, MutateOptions{Seed: 2, Scale: 1})
	fa, fb, fc := fingerprint(t, a), fingerprint(t, b), fingerprint(t, c)
	if fa != fb || fa != fc {
		t.Fatalf("gen, mutate 1, mutate 2 gave %s, %s (copied between cycles), %s (another tree)", fa, fb, fc)
	}
}

// snapshot is a tree's regular files and directories, with content hashes.
type snapshot struct {
	files map[string]fileState
	dirs  map[string]entry
	links map[string]entry
}

type fileState struct {
	e   entry
	sum [32]byte
}

func snap(t *testing.T, dir string) snapshot {
	t.Helper()
	ents, err := scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot{files: map[string]fileState{}, dirs: map[string]entry{}, links: map[string]entry{}}
	for _, e := range ents {
		switch e.kind {
		case 'f':
			f, err := os.Open(filepath.Join(dir, e.path))
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			io.Copy(h, f)
			f.Close()
			var sum [32]byte
			h.Sum(sum[:0])
			s.files[e.path] = fileState{e, sum}
		case 'd':
			s.dirs[e.path] = e
		case 'l':
			s.links[e.path] = e
		}
	}
	return s
}

// TestCycleCounts: what a cycle reports is what changed on disk.
func TestCycleCounts(t *testing.T) {
	t.Parallel()
	dir := generate(t, Config{Preset: testPreset, Seed: 5})
	for _, tc := range []struct {
		name  string
		opt   MutateOptions
		check func(t *testing.T, c Cycle)
	}{
		{"a day", MutateOptions{Seed: 1, Scale: 1}, func(t *testing.T, c Cycle) {
			if c.NewPackages < 4 || c.RemovedPackages < 4 || c.Upgraded < 4 || c.Touched == 0 || c.Chmod == 0 {
				t.Errorf("want every kind of change in every area: %+v", c)
			}
		}},
		{"a busy week, with a new flat directory", MutateOptions{Seed: 2, Scale: FlatEvery}, func(t *testing.T, c Cycle) {
			if c.FlatDirAdded == "" {
				t.Fatalf("no flat directory at scale %d: %+v", FlatEvery, c)
			}
			ents, err := os.ReadDir(filepath.Join(dir, c.FlatDirAdded))
			if err != nil {
				t.Fatal(err)
			}
			var pkgs int
			cran, _ := os.ReadDir(filepath.Join(dir, cranDir))
			for _, e := range cran {
				if strings.HasSuffix(e.Name(), ".tar.gz") {
					pkgs++
				}
			}
			if len(ents) != pkgs+len(cranIndexNames) {
				t.Errorf("%s has %d entries, want one per CRAN package (%d) and the index", c.FlatDirAdded, len(ents), pkgs)
			}
		}},
		{"the same again: the oldest flat directory goes", MutateOptions{Seed: 3, Scale: FlatEvery}, func(t *testing.T, c Cycle) {}},
		{"again", MutateOptions{Seed: 4, Scale: FlatEvery}, func(t *testing.T, c Cycle) {
			if c.FlatDirRemoved == "" {
				t.Errorf("a third flat directory, none removed: %+v", c)
			}
		}},
		{"nothing new", MutateOptions{Seed: 5, Scale: 0}, func(t *testing.T, c Cycle) {
			if c.Added+c.Removed+c.Archived+c.Touched+c.Chmod+c.DirsAdded+c.DirsRemoved != 0 || c.IndexRewrites == 0 {
				t.Errorf("scale 0 rewrites the indexes only: %+v", c)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snap(t, dir)
			c := mutate(t, dir, tc.opt)
			after := snap(t, dir)
			checkCounts(t, before, after, c)
			tc.check(t, c)
		})
	}
}

func checkCounts(t *testing.T, before, after snapshot, c Cycle) {
	t.Helper()
	gone := map[[32]byte]bool{}
	old := map[[32]byte]bool{}
	for p, f := range before.files {
		old[f.sum] = true
		if _, ok := after.files[p]; !ok {
			gone[f.sum] = true
		}
	}
	var added, removed, archived, rewritten, touched, chmod int
	var bytes, changedBytes int64
	for p, f := range after.files {
		bytes += f.e.size
		b, ok := before.files[p]
		switch {
		case !ok && gone[f.sum]:
			archived++
		case !ok && old[f.sum]:
			t.Errorf("%s: a copy of another file", p)
		case !ok:
			added++
			changedBytes += f.e.size
		case b.sum != f.sum:
			rewritten++
			changedBytes += f.e.size
		case b.e.mtime != f.e.mtime && b.e.mode != f.e.mode:
			t.Errorf("%s: both its mtime and its mode changed", p)
		case b.e.mtime != f.e.mtime:
			touched++
		case b.e.mode != f.e.mode:
			chmod++
		}
	}
	for p := range before.files {
		if _, ok := after.files[p]; !ok {
			removed++
		}
	}
	removed -= archived
	got := Cycle{Files: len(after.files), Bytes: bytes, ChangedFiles: added + rewritten, ChangedBytes: changedBytes,
		Added: added, Removed: removed, Archived: archived, IndexRewrites: rewritten, Touched: touched, Chmod: chmod}
	want := Cycle{Files: c.Files, Bytes: c.Bytes, ChangedFiles: c.ChangedFiles, ChangedBytes: c.ChangedBytes,
		Added: c.Added, Removed: c.Removed, Archived: c.Archived, IndexRewrites: c.IndexRewrites, Touched: c.Touched, Chmod: c.Chmod}
	if got != want {
		t.Errorf("on disk %+v\nreported %+v", got, want)
	}
	if len(after.files) != len(before.files)+c.Added-c.Removed {
		t.Errorf("%d files after, %d before, %d added, %d removed", len(after.files), len(before.files), c.Added, c.Removed)
	}
	if len(after.dirs) != len(before.dirs)+c.DirsAdded-c.DirsRemoved {
		t.Errorf("%d directories after, %d before, %d added, %d removed", len(after.dirs), len(before.dirs), c.DirsAdded, c.DirsRemoved)
	}
	for p, l := range before.links {
		if after.links[p] != l {
			t.Errorf("symlink %s changed: %+v, now %+v", p, l, after.links[p])
		}
	}
	// A directory is dated to the cycle exactly when its entries changed.
	for p, d := range after.dirs {
		b, ok := before.dirs[p]
		if ok && b.mode != d.mode {
			t.Errorf("directory %s changed mode", p)
		}
	}
}

// TestVersionPinsOutput: the trees a Version makes do not change. The
// benchmarks reuse a cached tree made by the same Version; if this fails
// because the generator changed on purpose, change Version and pinned.
func TestVersionPinsOutput(t *testing.T) {
	t.Parallel()
	const pinned = "d8ea17d1879066f1a33a6054f48a3402968474ec8a516f32e166231ebfa2ad8e"
	dir := generate(t, Config{Preset: testPreset, Seed: 1})
	mutate(t, dir, MutateOptions{Seed: 1, Scale: 1})
	if got := fingerprint(t, dir); got != pinned {
		t.Fatalf("%s now makes another tree (fingerprint %s after gen and one cycle, was %s): change Version", Version, got, pinned)
	}
}
