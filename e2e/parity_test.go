//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
)

// importMode is one ipfs-sync setting and the kubo setting that must give
// the same root CID.
type importMode struct {
	name        string
	sync        []string // ipfs-sync sync flags
	kuboProfile string   // ipfs init --profile test,<kuboProfile>
	kubo        []string // ipfs add flags
	kuboConfig  []kuboOpt
}

var (
	modeDefault = importMode{
		name:        "default",
		kuboProfile: "unixfs-v1-2025",
		kubo:        []string{"--raw-leaves=false", "--preserve-mode", "--preserve-mtime"},
	}
	modeNone = importMode{
		name:        "metadata-none",
		sync:        []string{"--metadata", "none"},
		kuboProfile: "unixfs-v1-2025",
	}
	modeV0 = importMode{
		name:        "v0",
		sync:        []string{"--profile", "unixfs-v0-2015"},
		kuboProfile: "unixfs-v0-2015",
		kubo:        []string{"--preserve-mode", "--preserve-mtime"},
	}
	modeV0None = importMode{
		name:        "v0-metadata-none",
		sync:        []string{"--profile", "unixfs-v0-2015", "--metadata", "none"},
		kuboProfile: "unixfs-v0-2015",
	}
	importModes = []importMode{modeDefault, modeNone, modeV0, modeV0None}
)

// with returns m with extra flags on both sides.
func (m importMode) with(name string, syncFlags, kuboFlags []string, cfg ...kuboOpt) importMode {
	m.name += "/" + name
	m.sync = append(append([]string{}, m.sync...), syncFlags...)
	m.kubo = append(append([]string{}, m.kubo...), kuboFlags...)
	m.kuboConfig = append(append([]kuboOpt{}, m.kuboConfig...), cfg...)
	return m
}

// repro is the pair of commands a failure report quotes.
func (m importMode) repro(dir string) string {
	init := "ipfs init --profile test,pebbleds," + m.kuboProfile
	for _, c := range m.kuboConfig {
		init += " && ipfs config --json " + c.key + " " + shellQuote(c.json)
	}
	return fmt.Sprintf("%s && ipfs add -r -H -Q %s %s  vs  ipfs-sync -q sync %s %s",
		init, shellQuote(m.kubo...), shellQuote(dir), shellQuote(m.sync...), shellQuote(dir))
}

// checkParity imports dir with kubo and with ipfs-sync in mode m, fails if
// the roots differ, and returns the shared root and kubo's repository.
func checkParity(t *testing.T, dir string, m importMode) (root, ipfsPath string) {
	t.Helper()
	ipfsPath = kubo(t, m.kuboProfile, m.kuboConfig...)
	add := append(append([]string{"add", "-r", "-H", "-Q", "--offline"}, m.kubo...), dir)
	kres := kuboTry(t, ipfsPath, add...)
	repo := filepath.Join(t.TempDir(), "repo")
	argv := append(append([]string{"-q", "sync"}, m.sync...), dir)
	res := ipfsSync(t, repo, argv...)
	if kres.Code != 0 {
		// Where kubo refuses the settings, so must ipfs-sync: as a usage error.
		if res.Code != 2 {
			t.Fatalf("kubo refuses these settings but ipfs-sync gives exit %d (want 2)\n  repro: %s\n  kubo: %s  ipfs-sync: %s",
				res.Code, m.repro(dir), kres.Stderr, res.Stdout+res.Stderr)
		}
		return "", ipfsPath
	}
	want := oneCID(t, kres.Stdout)
	if res.Code != 0 {
		t.Fatalf("ipfs-sync %s (kubo gives %s):\n%s", shellQuote(argv...), want, res)
	}
	got := oneCID(t, res.Stdout)
	assertSameRoot(t, ipfsPath, repo, want, got, m.repro(dir))
	return want, ipfsPath
}

// TestParityTiny: the tiny mkmirror tree (Debian pool, dists, CRAN dir,
// symlinks incl. a loop and a dangling one) in every mode.
func TestParityTiny(t *testing.T) {
	dir := tinyTree.get(t)
	for _, m := range importModes {
		t.Run(m.name, func(t *testing.T) { checkParity(t, dir, m) })
	}
}

// TestParityEdge: the edge-case tree (chunk and v0 width boundaries, odd
// names, every mode bit, extreme mtimes, symlinks, empties, 40-deep) in
// every mode. On a mismatch the report names the entries that differ.
func TestParityEdge(t *testing.T) {
	dir := edgeTree.get(t)
	for _, m := range importModes {
		t.Run(m.name, func(t *testing.T) { checkParity(t, dir, m) })
	}
}

// TestParityEdgeAreas runs each top-level area of the edge tree on its own,
// so a failure points at one kind of edge case even when the whole-tree
// test already fails for another.
func TestParityEdgeAreas(t *testing.T) {
	dir := edgeTree.get(t)
	inline := modeDefault.with("inline", []string{"--inline"}, []string{"--inline"})
	for _, area := range []string{"names", "modes", "mtimes", "links", "empty", "deep"} {
		for _, m := range []importMode{modeDefault, modeV0, inline} {
			t.Run(area+"/"+m.name, func(t *testing.T) { checkParity(t, filepath.Join(dir, area), m) })
		}
	}
}

// TestParityFileWidth reaches the file DAG width boundary of both profiles
// cheaply: 1 KiB chunks and 16 links per node on both sides, with file
// sizes at one, two and three full levels, plus one byte. The other layout
// options kubo has ride on the same tree.
func TestParityFileWidth(t *testing.T) {
	dir := widthTree.get(t)
	small := []string{"--chunker", fmt.Sprintf("size-%d", smallChunk), "--max-file-links", fmt.Sprint(smallWidth)}
	smallKubo := []string{fmt.Sprintf("--chunker=size-%d", smallChunk), fmt.Sprintf("--max-file-links=%d", smallWidth)}
	var modes []importMode
	for _, m := range importModes {
		modes = append(modes, m.with("small-chunks", small, smallKubo))
	}
	modes = append(modes,
		modeDefault.with("small-chunks/trickle", append(small, "--trickle"), append(smallKubo, "--trickle")),
		modeNone.with("small-chunks/trickle", append(small, "--trickle"), append(smallKubo, "--trickle")),
		modeV0.with("small-chunks/trickle", append(small, "--trickle"), append(smallKubo, "--trickle")),
		modeNone.with("inline", []string{"--inline"}, []string{"--inline"}),
		modeNone.with("inline-limit-64", []string{"--inline", "--inline-limit", "64"}, []string{"--inline", "--inline-limit=64"}),
		modeV0None.with("cid-version-1", []string{"--cid-version", "1"}, []string{"--cid-version=1"}),
		modeV0None.with("raw-leaves-cidv1", []string{"--cid-version", "1", "--raw-leaves"}, []string{"--cid-version=1", "--raw-leaves"}),
		modeNone.with("cid-version-0", []string{"--cid-version", "0"}, []string{"--cid-version=0"}),
		modeNone.with("blake2b", []string{"--hash", "blake2b-256"}, []string{"--hash=blake2b-256"}),
		modeV0None.with("blake2b", []string{"--hash", "blake2b-256"}, []string{"--hash=blake2b-256"}),
		modeNone.with("buzhash", []string{"--chunker", "buzhash"}, []string{"--chunker=buzhash"}),
		modeNone.with("rabin", []string{"--chunker", "rabin-512-1024-2048"}, []string{"--chunker=rabin-512-1024-2048"}),
		modeNone.with("raw-leaves-false", []string{"--raw-leaves=false"}, []string{"--raw-leaves=false"}),
		modeDefault.with("inline", []string{"--inline"}, []string{"--inline"}),
		modeV0.with("cid-version-1", []string{"--cid-version", "1"}, []string{"--cid-version=1"}),
		importMode{name: "mode-only", sync: []string{"--metadata", "mode"}, kuboProfile: "unixfs-v1-2025",
			kubo: []string{"--raw-leaves=false", "--preserve-mode"}},
		importMode{name: "mtime-only", sync: []string{"--metadata", "mtime"}, kuboProfile: "unixfs-v1-2025",
			kubo: []string{"--raw-leaves=false", "--preserve-mtime"}},
	)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			checkParity(t, dir, m)
		})
	}
}

// TestParitySources: what SRC names, beyond a plain directory path. A
// single file (README: "import a directory (or file)"), a symlink (stored
// as a symlink, never followed, as kubo does with its argument), an empty
// directory, a path with a trailing slash.
func TestParitySources(t *testing.T) {
	b := newBuilder(filepath.Join(t.TempDir(), "src"))
	b.file("dir/small", 100, 0o640)
	b.file("dir/two-chunks", v1Chunk+1, 0o755)
	b.dir("empty", 0o700)
	b.symlink("link-to-dir", "dir")
	b.symlink("link-to-file", "dir/small")
	b.symlink("dangling", "nowhere")
	if err := b.finish(); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{"dir/small", "dir/two-chunks", "empty", "link-to-dir", "link-to-file", "dangling", "dir/"} {
		for _, m := range []importMode{modeDefault, modeNone, modeV0} {
			t.Run(src+"/"+m.name, func(t *testing.T) {
				p := b.path(src)
				if src == "dir/" {
					p += "/"
				}
				checkParity(t, p, m)
			})
		}
	}
}

// TestParityHiddenFalse: `--hidden=false` leaves dotfiles out as kubo does
// without -H.
func TestParityHiddenFalse(t *testing.T) {
	dir := edgeTree.get(t)
	for _, area := range []string{"names", "links", "empty"} {
		for _, m := range []importMode{modeDefault, modeNone} {
			t.Run(area+"/"+m.name, func(t *testing.T) {
				src := filepath.Join(dir, area)
				ipfsPath := kubo(t, m.kuboProfile)
				want := oneCID(t, kuboRun(t, ipfsPath, append(append([]string{"add", "-r", "-Q", "--offline"}, m.kubo...), src)...))
				repo := filepath.Join(t.TempDir(), "repo")
				argv := append(append([]string{"-q", "sync", "--hidden=false"}, m.sync...), src)
				res := ipfsSync(t, repo, argv...)
				if res.Code != 0 {
					t.Fatalf("ipfs-sync %s: %s", shellQuote(argv...), res)
				}
				assertSameRoot(t, ipfsPath, repo, want, oneCID(t, res.Stdout),
					fmt.Sprintf("ipfs add -r (no -H) %s %s  vs  ipfs-sync %s", shellQuote(m.kubo...), src, shellQuote(argv...)))
			})
		}
	}
}
