//go:build e2e

package e2e

import (
	"encoding/base32"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// hamtMode adds a HAMT threshold (bytes; 0 keeps the profile's) and size
// estimation ("" keeps the profile's) to m, on both sides.
func hamtMode(m importMode, threshold int, estimation string) importMode {
	var flags []string
	var cfg []kuboOpt
	name := ""
	if threshold != 0 {
		flags = append(flags, "--hamt-threshold", strconv.Itoa(threshold))
		cfg = append(cfg, kuboConfig("Import.UnixFSHAMTDirectorySizeThreshold", strconv.Quote(kuboSize(threshold))))
		name += "threshold-" + kuboSize(threshold)
	}
	if estimation != "" {
		flags = append(flags, "--hamt-estimation", estimation)
		cfg = append(cfg, kuboConfig("Import.UnixFSHAMTDirectorySizeEstimation", strconv.Quote(estimation)))
		if name != "" {
			name += "/"
		}
		name += estimation
	}
	return m.with(name, flags, nil, cfg...)
}

func kuboSize(n int) string {
	if n%kib == 0 {
		return fmt.Sprintf("%dKiB", n/kib)
	}
	return fmt.Sprintf("%dB", n)
}

// flatDir is a directory of n files with names of one length and contents
// of one length, so that every link in it has the same encoded size and
// the directory's size grows by the same amount per entry.
type flatDir struct {
	dir     string
	nameLen int // at least len("entry-0000000000.deb")
	n       int
}

// name is entry i's name: entry-%010d.deb, padded with x before the suffix.
func (f *flatDir) name(i int) string {
	s := fmt.Sprintf("entry-%010d", i)
	return s + strings.Repeat("x", max(0, f.nameLen-len(s)-4)) + ".deb"
}

// resize makes the directory hold exactly entries 0..n-1.
func (f *flatDir) resize(t testing.TB, n int) {
	t.Helper()
	if f.n == 0 {
		if err := os.MkdirAll(f.dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for ; f.n < n; f.n++ {
		p := filepath.Join(f.dir, f.name(f.n))
		if err := os.WriteFile(p, []byte(fmt.Sprintf("%08d", f.n)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := lutimes(p, defaultMTime); err != nil {
			t.Fatal(err)
		}
	}
	for ; f.n > n; f.n-- {
		if err := os.Remove(filepath.Join(f.dir, f.name(f.n-1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := lutimes(f.dir, defaultMTime); err != nil {
		t.Fatal(err)
	}
}

// blockSize is the size of block c in the kubo repository ipfsPath.
func blockSize(t testing.TB, ipfsPath, c string) int {
	t.Helper()
	out := kuboRun(t, ipfsPath, "block", "stat", "--offline", c)
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "Size:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("ipfs block stat %s: %q", c, out)
			}
			return n
		}
	}
	t.Fatalf("ipfs block stat %s: no size in %q", c, out)
	return 0
}

// cidByteLen is the binary length of a CIDv0 (Qm...) or base32 CIDv1.
func cidByteLen(t testing.TB, c string) int {
	t.Helper()
	if strings.HasPrefix(c, "Qm") {
		return 34
	}
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(c[1:]))
	if err != nil || c[0] != 'b' {
		t.Fatalf("cannot decode CID %s: %v", c, err)
	}
	return len(b)
}

// TestHAMTThreshold finds, with kubo as the oracle, the smallest number N
// of entries that makes a flat directory a HAMT shard, and checks that
// ipfs-sync gives kubo's root for N-1 (basic), N and N+1 (HAMT) entries.
// It covers kubo's default threshold (256 KiB) in both size estimations,
// with and without metadata and for v0, and a 1 KiB threshold set on both
// sides (kubo through Import.UnixFSHAMTDirectorySizeThreshold).
func TestHAMTThreshold(t *testing.T) {
	cases := []struct {
		mode      importMode
		threshold int  // the threshold in effect, bytes
		links     bool // links estimation in effect
	}{
		{hamtMode(modeDefault, 0, "block"), 256 * kib, false},
		{hamtMode(modeNone, 0, "block"), 256 * kib, false},
		{hamtMode(modeDefault, 0, "links"), 256 * kib, true},
		{hamtMode(modeNone, 0, "links"), 256 * kib, true},
		{modeV0, 256 * kib, true}, // unixfs-v0-2015 estimates by links
		{hamtMode(modeDefault, 1*kib, "block"), 1 * kib, false},
		{hamtMode(modeNone, 1*kib, "block"), 1 * kib, false},
		{hamtMode(modeDefault, 1*kib, "links"), 1 * kib, true},
		{hamtMode(modeNone, 1*kib, "links"), 1 * kib, true},
		{hamtMode(modeV0None, 1*kib, ""), 1 * kib, true},
	}
	for _, c := range cases {
		t.Run(c.mode.name, func(t *testing.T) {
			t.Parallel()
			ipfsPath := kubo(t, c.mode.kuboProfile, c.mode.kuboConfig...)
			// Long names keep the 256 KiB directories near a thousand
			// entries, not five thousand.
			flat := &flatDir{dir: filepath.Join(t.TempDir(), "flat"), nameLen: 20}
			if c.threshold > 16*kib {
				flat.nameLen = 200
			}
			roots := map[int]string{}
			add := func(n int) string {
				if r, ok := roots[n]; ok {
					return r
				}
				flat.resize(t, n)
				roots[n] = kuboAdd(t, ipfsPath, flat.dir, c.mode.kubo...)
				return roots[n]
			}
			isHAMT := func(n int) bool { return unixfsType(t, ipfsPath, add(n)) == ufsHAMTShard }

			// Every link has the same size, so the estimate is linear in
			// the entry count; two small directories give the line.
			var guess int
			if c.links {
				links := dagGet(t, ipfsPath, add(1)).Links
				guess = c.threshold/(flat.nameLen+cidByteLen(t, links[0].Cid)) + 1
			} else {
				s1, s2 := blockSize(t, ipfsPath, add(1)), blockSize(t, ipfsPath, add(2))
				per := s2 - s1
				guess = (c.threshold-(s1-per))/per + 1
			}
			n := firstTrue(t, guess, isHAMT)
			if n != guess {
				t.Logf("kubo shards at %d entries, not at the %d the size estimate predicts", n, guess)
			}
			t.Logf("kubo: %d entries stay a basic directory, %d make a HAMT", n-1, n)
			for _, k := range []int{n - 1, n, n + 1} {
				want := add(k)
				if got := isHAMT(k); got != (k >= n) {
					t.Fatalf("kubo: %d entries: HAMT=%v", k, got)
				}
				flat.resize(t, k)
				repo := filepath.Join(t.TempDir(), fmt.Sprintf("repo-%d", k))
				argv := append(append([]string{"-q", "sync"}, c.mode.sync...), flat.dir)
				res := ipfsSync(t, repo, argv...)
				if res.Code != 0 {
					t.Fatalf("ipfs-sync %s:\n%s", shellQuote(argv...), res)
				}
				repro := fmt.Sprintf("%d files named %q..., content %%08d, mode 0644, mtime %s (dir too): %s",
					k, flat.name(0), defaultMTime.Format("2006-01-02T15:04:05.999999999Z"), c.mode.repro(flat.dir))
				assertSameRoot(t, ipfsPath, repo, want, oneCID(t, res.Stdout), repro)
			}
		})
	}
}

// firstTrue finds the smallest n >= 1 with pred(n), for a monotone pred,
// starting from a guess: it brackets the answer by doubling steps away from
// the guess, then bisects.
func firstTrue(t testing.TB, guess int, pred func(int) bool) int {
	t.Helper()
	guess = max(guess, 1)
	lo, hi := 0, 0 // pred(lo) false (0: none known), pred(hi) true
	if pred(guess) {
		hi = guess
		for step := 1; lo == 0; step *= 2 {
			n := hi - step
			if n < 1 {
				lo = 0
				break
			}
			if pred(n) {
				hi = n
			} else {
				lo = n
			}
		}
	} else {
		lo = guess
		for step := 1; hi == 0; step *= 2 {
			n := lo + step
			if n > 16*guess+64 {
				t.Fatalf("no HAMT up to %d entries", n)
			}
			if pred(n) {
				hi = n
			} else {
				lo = n
			}
		}
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if pred(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// TestParityTinyHAMT runs the tiny mirror with a 1 KiB threshold, so that
// most of its directories (the CRAN dir, pool prefixes, ...) become HAMT
// shards, nested under basic directories and each other, with metadata on
// their roots; and with a narrow fanout for deeper shards.
func TestParityTinyHAMT(t *testing.T) {
	dir := tinyTree.get(t)
	modes := []importMode{
		hamtMode(modeDefault, kib, "block"),
		hamtMode(modeNone, kib, "links"),
		hamtMode(modeV0, kib, ""), // v0 estimates by links
		hamtMode(modeDefault, kib, "block").with("fanout-8", []string{"--max-hamt-fanout", "8"}, []string{"--max-hamt-fanout=8"}),
		hamtMode(modeV0None, kib, "").with("fanout-16", []string{"--max-hamt-fanout", "16"}, []string{"--max-hamt-fanout=16"}),
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			root, ipfsPath := checkParity(t, dir, m)
			if root == "" {
				t.Fatalf("kubo refuses %s (and so does ipfs-sync): nothing is sharded to check", m.name)
			}
			c := strings.TrimSpace(kuboRun(t, ipfsPath, "resolve", "--offline", "/ipfs/"+root+"/cran/src/contrib"))
			if typ := unixfsType(t, ipfsPath, strings.TrimPrefix(c, "/ipfs/")); typ != ufsHAMTShard {
				t.Errorf("cran/src/contrib is UnixFS type %d, want a HAMT shard: the test does not test what it says", typ)
			}
		})
	}
}

// TestHAMTThresholdBytes pins the threshold to the byte: a directory of
// equal entries plus one whose name grows a byte at a time, so the
// directory's size (estimate) grows one byte at a time across the 1 KiB
// threshold. Kubo finds the first name length that shards; ipfs-sync must
// agree one byte below, at, and above it. With metadata this also tells
// whether the directory's own mode and mtime count towards its size.
func TestHAMTThresholdBytes(t *testing.T) {
	for _, m := range []importMode{
		hamtMode(modeDefault, kib, "block"),
		hamtMode(modeNone, kib, "block"),
		hamtMode(modeDefault, kib, "links"),
		hamtMode(modeNone, kib, "links"),
		hamtMode(modeV0, kib, ""),
	} {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			ipfsPath := kubo(t, m.kuboProfile, m.kuboConfig...)
			flat := &flatDir{dir: filepath.Join(t.TempDir(), "flat"), nameLen: 20}
			// Two entries fewer than kubo's first HAMT count leaves room
			// for the growing entry to cross the threshold.
			add := func() string { return kuboAdd(t, ipfsPath, flat.dir, m.kubo...) }
			n := firstTrue(t, 16, func(n int) bool {
				flat.resize(t, n)
				return unixfsType(t, ipfsPath, add()) == ufsHAMTShard
			})
			flat.resize(t, n-2)
			pad := filepath.Join(flat.dir, "pad-")
			var padPath string
			setPad := func(l int) {
				if padPath != "" {
					if err := os.Remove(padPath); err != nil {
						t.Fatal(err)
					}
				}
				padPath = pad + strings.Repeat("x", l)
				if err := os.WriteFile(padPath, []byte("00000000"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(padPath, 0o644); err != nil {
					t.Fatal(err)
				}
				for _, p := range []string{padPath, flat.dir} {
					if err := lutimes(p, defaultMTime); err != nil {
						t.Fatal(err)
					}
				}
			}
			roots := map[int]string{}
			root := func(l int) string {
				if r, ok := roots[l]; ok {
					return r
				}
				setPad(l)
				roots[l] = add()
				return roots[l]
			}
			l := firstTrue(t, 60, func(l int) bool {
				if l > 251 {
					t.Fatalf("no HAMT with a %d-byte name", l)
				}
				return unixfsType(t, ipfsPath, root(l)) == ufsHAMTShard
			})
			if !strings.Contains(m.name, "links") && m.kuboProfile != "unixfs-v0-2015" {
				t.Logf("kubo: largest basic directory block %d bytes (threshold %d)", blockSize(t, ipfsPath, root(l-1)), kib)
			}
			for _, k := range []int{l - 1, l, l + 1} {
				want := root(k)
				setPad(k)
				repo := filepath.Join(t.TempDir(), fmt.Sprintf("repo-%d", k))
				argv := append(append([]string{"-q", "sync"}, m.sync...), flat.dir)
				res := ipfsSync(t, repo, argv...)
				if res.Code != 0 {
					t.Fatalf("ipfs-sync %s:\n%s", shellQuote(argv...), res)
				}
				repro := fmt.Sprintf("%d files named %q..., content %%08d, plus %q with content 00000000, mode 0644, mtime %s (dir too): %s",
					n-2, flat.name(0), filepath.Base(padPath), defaultMTime.Format("2006-01-02T15:04:05.999999999Z"), m.repro(flat.dir))
				assertSameRoot(t, ipfsPath, repo, want, oneCID(t, res.Stdout), repro)
			}
		})
	}
}

// TestHAMTTinyThreshold: a threshold below the size of an empty directory
// (1 byte, kubo "1B"). Kubo shards a directory when an entry is added and
// the size goes over; an empty directory never has one added.
func TestHAMTTinyThreshold(t *testing.T) {
	dir := edgeTree.get(t)
	for _, m := range []importMode{hamtMode(modeDefault, 1, "block"), hamtMode(modeNone, 1, "block"), hamtMode(modeDefault, 1, "links")} {
		t.Run(m.name, func(t *testing.T) {
			checkParity(t, filepath.Join(dir, "empty"), m)
		})
	}
}
