package sync_test

// Known answers: root CIDs pinned by the IPIP-499 spec, boxo's and kubo's Go
// tests and kubo's sharness scripts, recomputed here from inputs recreated
// byte for byte (content, names, modes, mtimes) and kubo's flags mapped onto
// profile.Overrides. Every row names its source; "kubo" means
// github.com/ipfs/kubo at v0.43.1 and "boxo" github.com/ipfs/boxo at v0.43.0
// (both also in the Go module cache), "specs" github.com/ipfs/specs.
//
// kubo v0.43.1 with no profile imports exactly as unixfs-v0-2015 (kubo
// test/cli/cid_profiles_test.go TestDefaultMatchesExpectedProfile), so the
// sharness scripts, which init with --profile=test and no import profile,
// map onto unixfs-v0-2015. Without --preserve-mode/--preserve-mtime kubo
// stores no metadata: rows use --metadata none unless they say otherwise.
//
// Inputs above 40 MB are skipped with -short; inputs of 100 MB and more
// (1 GiB for the unixfs-v1-2025 max-links fixtures) run only in the long
// tier (IPFS_SYNC_LONG=1, make test-long; see internal/testtier).

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/internal/testtier"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

const (
	v0 = profile.V0_2015
	v1 = profile.V1_2025

	kib = 1 << 10
	mib = 1 << 20

	bigInput  = 40 * mib  // skipped with -short
	hugeInput = 100 * mib // only in the long tier
)

type knownCase struct {
	name    string
	build   func(t testing.TB, dir string) string // recreates the input below dir; returns what is imported
	profile string
	o       profile.Overrides // Metadata nil means "none"
	want    string            // root CID as kubo prints it
	// wantV1 compares the root's CIDv1 form, as kubo prints a CIDv0 root
	// with --cid-base=base32.
	wantV1 bool
	size   int64 // bytes of input, for the -short and slow gates
	// bug marks a row that fails because of a product bug (see the message).
	bug string
	// check runs further checks on the imported DAG.
	check func(t *testing.T, store *blockstore.Store, root cid.Cid)
}

func runKnown(t *testing.T, cases []knownCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			switch {
			case tc.size >= hugeInput && !testtier.Long():
				t.Skipf("%d MiB input: the long tier only (%s=1, make test-long)", tc.size/mib, testtier.Env)
			case tc.size >= bigInput && testing.Short():
				t.Skipf("%d MiB input skipped in -short mode", tc.size/mib)
			}
			t.Parallel()
			if tc.bug != "" {
				t.Logf("PRODUCT BUG (expected to fail until fixed): %s", tc.bug)
			}
			o := tc.o
			if o.Metadata == nil {
				o.Metadata = ptr("none")
			}
			p, err := profile.New(tc.profile, o)
			if err != nil {
				t.Fatalf("profile.New(%s, %s): %v", tc.profile, describe(o), err)
			}
			src := tc.build(t, t.TempDir())
			fi, err := os.Lstat(src)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.IsDir() {
				// A single file or symlink: import its directory and take the
				// entry's CID, which is what `ipfs add FILE` prints. Importing
				// the file itself is TestKnownAnswerSingleSource.
				dirRoot, store := fxImport(t, filepath.Dir(src), p)
				e, ok := dagList(t, store.Blockstore(), dirRoot)[filepath.Base(src)]
				if !ok {
					t.Fatalf("%s missing from the imported directory", filepath.Base(src))
				}
				checkKnown(t, tc, p, e.Cid)
				return
			}
			root, store := fxImport(t, src, p)
			checkKnown(t, tc, p, root)
			if tc.check != nil {
				tc.check(t, store, root)
			}
		})
	}
}

// shared builds an input once, in t's temporary directory, for the rows of
// t that import it: they only read it, and the build is most of their I/O.
func shared(t *testing.T, build func(testing.TB, string) string) func(testing.TB, string) string {
	dir := t.TempDir()
	var once sync.Once
	var src string
	return func(tb testing.TB, _ string) string {
		once.Do(func() { src = build(tb, dir) })
		return src
	}
}

func checkKnown(t *testing.T, tc knownCase, p profile.Profile, root cid.Cid) {
	t.Helper()
	got := root.String()
	if tc.wantV1 {
		got = cid.NewCidV1(root.Type(), root.Hash()).String()
	}
	if got != tc.want {
		t.Errorf("root = %s, want %s (profile %s)", got, tc.want, p)
	}
}

func describe(o profile.Overrides) string {
	s := ""
	add := func(k string, v any) { s += fmt.Sprintf(" %s=%v", k, v) }
	if o.CIDVersion != nil {
		add("cid-version", *o.CIDVersion)
	}
	if o.Hash != nil {
		add("hash", *o.Hash)
	}
	if o.RawLeaves != nil {
		add("raw-leaves", *o.RawLeaves)
	}
	if o.Chunker != nil {
		add("chunker", *o.Chunker)
	}
	if o.Trickle != nil {
		add("trickle", *o.Trickle)
	}
	if o.HAMTThreshold != nil {
		add("hamt-threshold", *o.HAMTThreshold)
	}
	if o.MaxFileLinks != nil {
		add("max-file-links", *o.MaxFileLinks)
	}
	if o.Metadata != nil {
		add("metadata", *o.Metadata)
	}
	return s
}

// --- input builders ------------------------------------------------------------

// text is a single file holding s, as `echo`/`printf ... | ipfs add` or
// `ipfs add FILE` would add it.
func text(s string) func(testing.TB, string) string {
	return func(t testing.TB, dir string) string {
		p := filepath.Join(dir, "f")
		fxWrite(t, p, []byte(s), 0o644)
		return p
	}
}

// stream is a single file of r's bytes.
func stream(r func() io.Reader) func(testing.TB, string) string {
	return func(t testing.TB, dir string) string {
		p := filepath.Join(dir, "f")
		fxWriteFrom(t, p, r(), 0o644)
		return p
	}
}

// tree is a directory of files (path → content) and empty directories
// (path ending in "/").
func tree(entries map[string]string) func(testing.TB, string) string {
	return func(t testing.TB, dir string) string {
		root := filepath.Join(dir, "root")
		fxMkdir(t, root, 0o755)
		for p, content := range entries {
			if p[len(p)-1] == '/' {
				fxMkdir(t, filepath.Join(root, p), 0o755)
				continue
			}
			fxWrite(t, filepath.Join(root, p), []byte(content), 0o644)
		}
		return root
	}
}

func emptyDir(t testing.TB, dir string) string {
	p := filepath.Join(dir, "empty")
	fxMkdir(t, p, 0o755)
	return p
}

func kuboHAMT(n, nameLen, lastLen int, seed string) func(testing.TB, string) string {
	return func(t testing.TB, dir string) string {
		p := filepath.Join(dir, seed)
		fxMkdir(t, p, 0o700) // os.MkdirTemp; no metadata is stored
		kuboHAMTDir(t, p, n, nameLen, lastLen, seed)
		return p
	}
}

// --- (a) IPIP-499 profiles -------------------------------------------------------

func TestKnownAnswerIPIP499(t *testing.T) {
	const (
		v0Chunk = 256 * kib
		v1Chunk = 1 * mib
	)
	runKnown(t, []knownCase{
		// specs src/ipips/ipip-0499.md "Test fixtures" (unixfs-v0-2015, small file);
		// kubo test/cli/cid_profiles_test.go:118 (IPFSAddStr("hello world")).
		{name: "v0/small-file", build: text("hello world"), profile: v0, want: "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"},
		// specs ipip-0499.md "Test fixtures" (unixfs-v1-2025, small file); kubo cid_profiles_test.go:152.
		{name: "v1/small-file", build: text("hello world"), profile: v1, want: "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"},
		// kubo cid_profiles_test.go:119: 262144 bytes of DeterministicRandomReaderBytes(seed "chunk-v0-seed").
		{name: "v0/file-at-chunk-size", build: stream(func() io.Reader { return kuboRandom(v0Chunk, "chunk-v0-seed") }), profile: v0, want: "QmWmRj3dFDZdb6ABvbmKhEL6TmPbAfBZ1t5BxsEyJrcZhE"},
		// kubo cid_profiles_test.go:120: 262145 bytes, seed "chunk-v0-seed".
		{name: "v0/file-over-chunk-size", build: stream(func() io.Reader { return kuboRandom(v0Chunk+1, "chunk-v0-seed") }), profile: v0, want: "QmYyLxtzZyW22zpoVAtKANLRHpDjZtNeDjQdJrcQNWoRkJ"},
		// kubo cid_profiles_test.go:153: 1048576 bytes, seed "chunk-v1-seed" (one raw leaf).
		{name: "v1/file-at-chunk-size", build: stream(func() io.Reader { return kuboRandom(v1Chunk, "chunk-v1-seed") }), profile: v1, want: "bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta"},
		// kubo cid_profiles_test.go:154: 1048577 bytes, seed "chunk-v1-seed".
		{name: "v1/file-over-chunk-size", build: stream(func() io.Reader { return kuboRandom(v1Chunk+1, "chunk-v1-seed") }), profile: v1, want: "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64"},
		// specs ipip-0499.md "Test fixtures" (v0, file at max links); kubo
		// cid_profiles_test.go:121: 174 × 256 KiB, seed "v0-seed".
		{name: "v0/file-at-max-links", build: stream(func() io.Reader { return kuboRandom(174*v0Chunk, "v0-seed") }), profile: v0, size: 174 * v0Chunk, want: "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2"},
		// kubo cid_profiles_test.go:122: 174 × 256 KiB + 1 byte, seed "v0-seed".
		{name: "v0/file-over-max-links", build: stream(func() io.Reader { return kuboRandom(174*v0Chunk+1, "v0-seed") }), profile: v0, size: 174*v0Chunk + 1, want: "QmV81WL765sC8DXsRhE5fJv2rwhS4icHRaf3J9Zk5FdRnW"},
		// specs ipip-0499.md "Test fixtures" (v0, file over max links) and "DAG
		// layout" (balanced v0, depth 2): 44800 KiB = 175 × 256 KiB. The spec
		// does not name the input; it is kuboRandom with cid_profiles_test.go's
		// seedForProfile seed "v0-seed".
		{name: "v0/file-175-chunks", build: stream(func() io.Reader { return kuboRandom(175*v0Chunk, "v0-seed") }), profile: v0, size: 175 * v0Chunk, want: "QmepeWtdmS1hHXx1oZXsPUv6bMrfRRKfZcoPPU4eEfjnbf"},
		// specs ipip-0499.md "DAG layout" (trickle v0, 45 MiB, 180 leaves at
		// depths 1-2); input from kubo test/cli/dag_layout_test.go:77-88
		// ("trickle layout has varying leaf depth"): IPFSAddDeterministic("45MiB",
		// "trickle-test", "--trickle") on the default (v0) profile.
		{name: "v0/trickle-45MiB", build: stream(func() io.Reader { return kuboRandom(45*mib, "trickle-test") }), profile: v0, o: profile.Overrides{Trickle: ptr(true)}, size: 45 * mib, want: "QmbqR6g7YCpndLcCZZXkGyj13uMcSrwDYUvZ47vJqBVjUH"},
		// specs ipip-0499.md "Test fixtures" (v0, directory at HAMT threshold);
		// kubo cid_profiles_test.go:112-113,123: 4096 names of 30 chars, seed
		// "hamt-unixfs-v0-2015", links-bytes = 262144 (stays basic).
		{name: "v0/dir-at-hamt-threshold", build: kuboHAMT(4096, 30, 30, "hamt-unixfs-v0-2015"), profile: v0, want: "QmX5GtRk3TSSEHtdrykgqm4eqMEn3n2XhfkFAis5fjyZmN",
			check: wantDirKind(false)},
		// specs ipip-0499.md "Test fixtures" (v0, directory over HAMT threshold);
		// kubo cid_profiles_test.go:114-116,124: 4033 names of 31 chars, links-bytes = 262145.
		{name: "v0/dir-over-hamt-threshold", build: kuboHAMT(4033, 31, 31, "hamt-unixfs-v0-2015"), profile: v0, want: "QmeMiJzmhpJAUgynAcxTQYek5PPKgdv3qEvFsdV3XpVnvP",
			check: wantDirKind(true)},
		// specs ipip-0499.md "Test fixtures" (v1, directory at HAMT threshold);
		// kubo cid_profiles_test.go:145-147,157: 4765 names of 11 chars + one of
		// 21, seed "hamt-unixfs-v1-2025", block-bytes = 262144 (stays basic).
		{name: "v1/dir-at-hamt-threshold", build: kuboHAMT(4766, 11, 21, "hamt-unixfs-v1-2025"), profile: v1, want: "bafybeic3h7rwruealwxkacabdy45jivq2crwz6bufb5ljwupn36gicplx4",
			check: wantDirKind(false)},
		// specs ipip-0499.md "Test fixtures" (v1, directory over HAMT threshold);
		// kubo cid_profiles_test.go:148-150,158: last name 22 chars, block-bytes = 262145.
		{name: "v1/dir-over-hamt-threshold", build: kuboHAMT(4766, 11, 22, "hamt-unixfs-v1-2025"), profile: v1, want: "bafybeiegvuterwurhdtkikfhbxcldohmxp566vpjdofhzmnhv6o4freidu",
			check: wantDirKind(true)},
		// specs ipip-0499.md "Additional test vectors": the empty directory, v0 and v1.
		{name: "v0/empty-dir", build: emptyDir, profile: v0, want: "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"},
		{name: "v1/empty-dir", build: emptyDir, profile: v1, want: "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"},
		// specs ipip-0499.md "Additional test vectors" (preserved symlink,
		// gateway-conformance symlink.car); recipe in specs src/unixfs.md
		// "Symbolic Links" and kubo's old t0113-gateway-symlink/README.md:
		// testfiles/foo = "content\n", testfiles/bar -> foo, `ipfs add -Qr testfiles`.
		{name: "v0/preserved-symlink", profile: v0, want: "QmWvY6FaqFMS89YAQ9NAPjVP4WZKA1qbHbicc9HeSKQTgt",
			build: func(t testing.TB, dir string) string {
				root := filepath.Join(dir, "testfiles")
				fxWrite(t, filepath.Join(root, "foo"), []byte("content\n"), 0o644)
				fxSymlink(t, "foo", filepath.Join(root, "bar"))
				return root
			},
			check: wantEntries(map[string]string{
				"foo": "Qme2y5HA5kvo2jAx13UsnV5bQJVijiAJCPvaW3JGQWhvJZ",
				"bar": "QmTB8BaCJdCH5H3k7GrxJsxgDNmNYGGR71C58ERkivXoj5",
			})},
		// specs ipip-0499.md "Test fixtures" (v1, file at max links); kubo
		// cid_profiles_test.go:155: 1024 × 1 MiB, seed "v1-2025-seed".
		{name: "v1/file-at-max-links", build: stream(func() io.Reader { return kuboRandom(1024*v1Chunk, "v1-2025-seed") }), profile: v1, size: 1024 * v1Chunk, want: "bafybeihmf37wcuvtx4hpu7he5zl5qaf2ineo2lqlfrapokkm5zzw7zyhvm"},
		// kubo cid_profiles_test.go:156: 1024 × 1 MiB + 1 byte, seed "v1-2025-seed".
		{name: "v1/file-over-max-links", build: stream(func() io.Reader { return kuboRandom(1024*v1Chunk+1, "v1-2025-seed") }), profile: v1, size: 1024*v1Chunk + 1, want: "bafybeibdsi225ugbkmpbdohnxioyab6jsqrmkts3twhpvfnzp77xtzpyhe"},
		// specs ipip-0499.md "Test fixtures" (v1, file over max links) and "DAG
		// layout" (balanced v1): 1025 MiB = 1025 × 1 MiB. The spec does not name
		// the input; it is kuboRandom with seed "v1-2025-seed", as for the v0 row.
		{name: "v1/file-1025-chunks", build: stream(func() io.Reader { return kuboRandom(1025*v1Chunk, "v1-2025-seed") }), profile: v1, size: 1025 * v1Chunk, want: "bafybeihmzokxxjqwxjcryerhp5ezpcog2wcawfryb2xm64xiakgm4a5jue"},
	})
}

// --- boxo's profile tests and kubo's Go add tests --------------------------------

func TestKnownAnswerBoxoAndKuboAdd(t *testing.T) {
	runKnown(t, []knownCase{
		// boxo ipld/unixfs/io/profile_test.go:132-134 TestProfilePBNodeFieldOrderFixtures
		// and kubo test/cli/cid_profiles_test.go:639 TestUnixFSPBNodeFieldOrder
		// (IPIP-550 fixture): a directory holding hello.txt = "hello\n", links first.
		{name: "ipip550-links-first-dir", build: tree(map[string]string{"hello.txt": "hello\n"}), profile: v1, want: "bafybeigdcg7pksx2zk5336vrfsktjodlr4rbfz37qr3koc5xboxe5ekv24",
			check: wantEntries(map[string]string{"hello.txt": "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"})},
		// boxo profile_test.go:190-207 TestProfilePBNodeFieldOrderEndToEnd: 3000 × "a"
		// under UnixFS_v1_2025 with `ipfs add --chunker=size-1000`.
		{name: "boxo-3000a-size-1000", build: text(string(repeat('a', 3000))), profile: v1, o: profile.Overrides{Chunker: ptr("size-1000")}, want: "bafybeiapp6tzng2hpxzmopnplvg6hoxldufypompu6uzmhc6rdyw4m2qx4"},
		// boxo profile_test.go:208,225-241: 64 entries "file-%d.txt" = raw "file %d\n",
		// UnixFS_v1_2025 with HAMTShardingSize = 1024 (block estimation).
		{name: "boxo-hamt-64-threshold-1024", profile: v1, o: profile.Overrides{HAMTThreshold: ptr(1024)}, want: "bafybeiahnfucbarnualj2uzakbqnj3b3nvrszwu4jrl2x7ekbfqshpd524",
			build: func(t testing.TB, dir string) string {
				root := filepath.Join(dir, "hamt")
				fxMkdir(t, root, 0o755)
				for i := range 64 {
					fxWrite(t, filepath.Join(root, fmt.Sprintf("file-%d.txt", i)), fmt.Appendf(nil, "file %d\n", i), 0o644)
				}
				return root
			},
			check: wantDirKind(true)},
		// kubo test/cli/add_test.go:39,64-75: Import.HashFunction=sha2-512 on the
		// default (v0) profile switches to CIDv1 and raw leaves.
		{name: "kubo-add-sha2-512", build: text("hello world"), profile: v0, o: profile.Overrides{Hash: ptr("sha2-512"), CIDVersion: ptr(1), RawLeaves: ptr(true)}, want: "bafkrgqbqt3gerhas23vuzrapkdeqf4vu2dwxp3srdj6hvg6nhsug2tgyn6mj3u23yx7utftq3i2ckw2fwdh5qmhid5qf3t35yvkc5e5ottlw6"},
		// kubo add_test.go:38,103-117: Import.CidVersion=1 with UnixFSRawLeaves=false.
		{name: "kubo-add-cidv1-no-raw-leaves", build: text("hello world"), profile: v0, o: profile.Overrides{CIDVersion: ptr(1), RawLeaves: ptr(false)}, want: "bafybeihykld7uyxzogax6vgyvag42y7464eywpf55gxi5qpoisibh3c5wa"},
		// kubo add_test.go:157-182: 262144 KiB of DeterministicRandomReader(seed
		// "hello world"), unixfs-v0-2015 with --max-file-links 1024.
		{name: "kubo-add-max-file-links-1024", build: stream(func() io.Reader { return kuboRandom(262144*kib, "hello world") }), profile: v0, o: profile.Overrides{MaxFileLinks: ptr(1024)}, size: 262144 * kib, want: "QmbBftNHWmjSWKLC49dMVrfnY8pjrJYntiAXirFJ7oJrNk"},
	})
}

func repeat(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// --- (b) t0047: mode and mtime -----------------------------------------------------

const (
	t0047PreserveMTime = 1604320482 // t0047-add-mode-mtime.sh:17
	t0047CustomMTime   = 1603539720 // :24
	t0047CustomNsecs   = 54321      // :25
	t0047DirTime       = 1655158632 // :241
)

// t0047File is test$1.txt from test_file (t0047:53-56): an empty file made
// by touch, with the mode and mtime a row gives it.
func t0047File(mode os.FileMode, mtime time.Time) func(testing.TB, string) string {
	return func(t testing.TB, dir string) string {
		p := filepath.Join(dir, "testdirect.txt")
		fxWrite(t, p, nil, mode)
		fxTouch(t, p, mtime)
		return p
	}
}

// t0047Link is linkfile$1 (t0047:54,57): a symlink to "nothing".
func t0047Link(mtime time.Time) func(testing.TB, string) string {
	return func(t testing.TB, dir string) string {
		p := filepath.Join(dir, "linkfiledirect")
		fxSymlink(t, "nothing", p)
		fxTouch(t, p, mtime)
		return p
	}
}

// t0047Tree is setup_directory (t0047:243-265) under umask 022 (:48).
// modeAll and mtimeAll, when set, replace every mode and mtime, which is
// what kubo's --mode and --mtime flags store.
func t0047Tree(modeAll os.FileMode, mtimeAll time.Time) func(testing.TB, string) string {
	return func(t testing.TB, dir string) string {
		root := filepath.Join(dir, "directXXXXXX")
		at := func(d int64) time.Time {
			if !mtimeAll.IsZero() {
				return mtimeAll
			}
			return time.Unix(t0047DirTime+d, 0)
		}
		mode := func(m os.FileMode) os.FileMode {
			if modeAll != 0 {
				return modeAll
			}
			return m
		}
		j := func(p string) string { return filepath.Join(root, p) }
		for _, d := range []string{"dir1", "dir2/sub1/sub2", "dir3"} {
			fxMkdir(t, j(d), 0o755)
		}
		fxWrite(t, j("dir2/sub1/sub2/file3"), nil, mode(0o644))
		fxTouch(t, j("dir2/sub1/sub2/file3"), at(10))
		fxSymlink(t, "../sub2/file3", j("dir2/sub1/link1"))
		fxTouch(t, j("dir2/sub1/link1"), at(20))
		fxWrite(t, j("dir3/file2"), nil, mode(0o644))
		fxWrite(t, j("file1"), nil, mode(0o644))
		for _, d := range []struct {
			p    string
			m    os.FileMode
			secs int64
		}{
			{"dir2/sub1/sub2", 0o755, 30}, {"dir2/sub1", 0o755, 40}, {"dir2", 0o755, 50},
			{"dir3/file2", 0o644, 60}, {"dir3", 0o755, 70}, {"file1", 0o644, 80},
			{"dir1", 0o755, 90}, {"", 0o700, 0}, // mktemp -d makes the root 0700
		} {
			fxChmod(t, j(d.p), mode(d.m))
			fxTouch(t, j(d.p), at(d.secs))
		}
		return root
	}
}

// t0047Dir1 is $TESTDIR/dir1 of setup_directory: an empty 0755 directory.
func t0047Dir1(mode os.FileMode, mtime time.Time) func(testing.TB, string) string {
	return func(t testing.TB, dir string) string {
		p := filepath.Join(dir, "dir1")
		fxMkdir(t, p, mode)
		fxTouch(t, p, mtime)
		return p
	}
}

func TestKnownAnswerT0047ModeMTime(t *testing.T) {
	var (
		preserve          = time.Unix(t0047PreserveMTime, 0)
		custom            = time.Unix(t0047CustomMTime, 0)
		customNsec        = time.Unix(t0047CustomMTime, t0047CustomNsecs)
		other             = time.Date(2020, 11, 2, 12, 34, 42, 0, time.Local) // touch -m -t 202011021234.42; never stored
		dir1Time          = time.Unix(t0047DirTime+90, 0)
		mode, mtime, both = ptr("mode"), ptr("mtime"), ptr("mode,mtime")
	)
	// The sharness config (t0047:9-13) is CIDv0, sha2-256, size-262144: unixfs-v0-2015.
	// kubo's --mode=M / --mtime=S / --mtime-nsecs=N store M, S.N instead of the
	// file's own values; here the file is given M and S.N and they are preserved.
	runKnown(t, []knownCase{
		// t0047:15,59-63 "feature on file has no effect when not used".
		{name: "file/no-preserve", build: t0047File(0o644, other), profile: v0, want: "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"},
		// t0047:19,65-70 "can preserve file mode" (0640).
		{name: "file/preserve-mode", build: t0047File(0o640, other), profile: v0, o: profile.Overrides{Metadata: mode}, want: "QmQLgxypSNGNFTuUPGCecq6dDEjb6hNB5xSyVmP3cEuNtq"},
		// t0047:20,72-76 "can preserve file modification time".
		{name: "file/preserve-mtime", build: t0047File(0o640, preserve), profile: v0, o: profile.Overrides{Metadata: mtime}, want: "QmQ6kErEW8kztQFV8vbwNU8E4dmtGsYpRiboiLxUEwibvj"},
		// t0047:22,78-83 "can preserve file mode and modification time".
		{name: "file/preserve-mode-and-mtime", build: t0047File(0o640, preserve), profile: v0, o: profile.Overrides{Metadata: both}, want: "QmYkvboLsvLFcSYmqVJRxvBdYRQLroLv9kELf3LRiCqBri"},
		// t0047:21,85-89 "can preserve symlink modification time".
		{name: "symlink/preserve-mtime", build: t0047Link(preserve), profile: v0, o: profile.Overrides{Metadata: mtime}, want: "QmbJwotgtr84JxcnjpwJ86uZiyMoxbZuNH4YrdJMypkYaB"},
		// t0047:27,91-96 "can set file mode" (--mode=0764).
		{name: "file/custom-mode", build: t0047File(0o764, other), profile: v0, o: profile.Overrides{Metadata: mode}, want: "QmchD3BN8TQ3RW6jPLxSaNkqvfuj7syKhzTRmL4EpyY1Nz"},
		// t0047:28,98-102 "can set file modification time" (--mtime=1603539720).
		{name: "file/custom-mtime", build: t0047File(0o644, custom), profile: v0, o: profile.Overrides{Metadata: mtime}, want: "QmT3aY4avDcYXCWpU8CJzqUkW7YEuEsx36S8cTNoLcuK1B"},
		// t0047:29,104-108 "can set file modification time nanoseconds" (--mtime-nsecs=54321).
		{name: "file/custom-mtime-nsecs", build: t0047File(0o644, customNsec), profile: v0, o: profile.Overrides{Metadata: mtime}, want: "QmaKH8H5rXBUBCX4vdxi7ktGQEL7wejV7L9rX2qpZjwncz"},
		// t0047:30,110-115 "can set file mode and modification time".
		{name: "file/custom-mode-and-mtime-nsecs", build: t0047File(0o764, customNsec), profile: v0, o: profile.Overrides{Metadata: both}, want: "QmUkxrtBA8tPjwCYz1HrsoRfDz6NgKut3asVeHVQNH4C8L"},
		// t0047:31,117-121 "can set symlink modification time".
		{name: "symlink/custom-mtime", build: t0047Link(custom), profile: v0, o: profile.Overrides{Metadata: mtime}, want: "QmV1Uot2gy4bhY9yvYiZxhhchhyYC6MKKoGV1XtWNmpCLe"},
		// t0047:123-127 "cannot set mode on symbolic link": a symlink never
		// stores a mode, so mode,mtime gives the mtime-only CID.
		{name: "symlink/mode-not-stored", build: t0047Link(custom), profile: v0, o: profile.Overrides{Metadata: both}, want: "QmV1Uot2gy4bhY9yvYiZxhhchhyYC6MKKoGV1XtWNmpCLe"},
		// t0047:32,130-134 "can set symlink modification time nanoseconds".
		{name: "symlink/custom-mtime-nsecs", build: t0047Link(customNsec), profile: v0, o: profile.Overrides{Metadata: mtime}, want: "QmPHYCxYvvHj6VxiPNJ3kXxcPsnJLDYUJqsDJWjvytmrmY"},

		// t0047:273,315-318 "feature on directory has no effect when not used".
		{name: "dir1/no-preserve", build: t0047Dir1(0o755, dir1Time), profile: v0, want: "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"},
		// t0047:274,320-323 "can preserve directory mode".
		{name: "dir1/preserve-mode", build: t0047Dir1(0o755, dir1Time), profile: v0, o: profile.Overrides{Metadata: mode}, want: "QmRviohgafvCsbkiTgfQFipbuXJ6k1YtoiaQW4quttJPKu"},
		// t0047:275,325-328 "can preserve directory modification time".
		{name: "dir1/preserve-mtime", build: t0047Dir1(0o755, dir1Time), profile: v0, o: profile.Overrides{Metadata: mtime}, want: "QmYMy7CZGb498QFSQBF5ZFwv1FYbrAtYZMe4VxhDXxAcvf"},
		// t0047:268,276,330-333 "can set directory mode" (--mode=0713).
		{name: "dir1/custom-mode", build: t0047Dir1(0o713, dir1Time), profile: v0, o: profile.Overrides{Metadata: mode}, want: "QmQ1ABnw2iip7sj23EzzBZ9T77KyyfESP6SUboiXPyzNQe"},
		// t0047:277,335-338 "can set directory modification time".
		{name: "dir1/custom-mtime", build: t0047Dir1(0o755, custom), profile: v0, o: profile.Overrides{Metadata: mtime}, want: "QmfWitW6F13WHFXLbJzXRYmwrS1p4gaAJAfucUSMytRPn3"},
		// t0047:278,340-343 "can set directory modification time nanoseconds".
		{name: "dir1/custom-mtime-nsecs", build: t0047Dir1(0o755, customNsec), profile: v0, o: profile.Overrides{Metadata: mtime}, want: "QmZFdCLJay31hT3Tx1LygJ7XfiLEs3qLCXtbeBfhf38aZg"},

		// t0047:272,279-291,345-358 "can recursively preserve mode and
		// modification time": root QmSioyvQ…, and the sorted CIDs of all ten
		// entries `ipfs add -qr --preserve-mode --preserve-mtime` prints.
		{name: "tree/preserve-mode-and-mtime", build: t0047Tree(0, time.Time{}), profile: v0, o: profile.Overrides{Metadata: both}, want: "QmSioyvQuXetxg7uo8FswGn9XKKEsisDq1HTMzGyWbw2R6",
			check: wantAllCIDs(
				"QmRCG3Pprg4jbhfYBzVzfJVyneFHnBquPGXwvXU3jSuf5j", "QmReHCn4BSJJdtd6Le8Hd8Puai6TmgpPCYb13wyM7FD9AD",
				"QmSioyvQuXetxg7uo8FswGn9XKKEsisDq1HTMzGyWbw2R6", "QmTMoVgJKhPrz9DfkvT132mxyBXNae5azXQ42WbM9abdSE",
				"QmVzXqpuQGCAgRwEbGuE9xe8Fidi1HEXaPKsQEFEbPJW9j", "QmW6Nqy2nziduAp3UGx2a52gtSUsYzhVcZMuPdxBRnwCyP",
				"QmeQwX5qAX18fcPDxDdkfM6ttuFCZetF5hgeUa6ov8D5oc", "QmefofUNwC2U3Xp87rB1x8Aws6AdsDuoXR7B9u2RkEZ4dQ",
				"Qmeu24TFarJwLzJgMTDYDJTr4BMGnzafoSnfxov1513abW", "Qmf82bbFg2e8HmcqiewutVVw5NoMpiXZD57LpLdC1poBuH",
			)},
		// t0047:279 HASH_DIR_SUB1 is dir2/sub1 of the same tree.
		{name: "tree/sub1", build: t0047Tree(0, time.Time{}), profile: v0, o: profile.Overrides{Metadata: both}, want: "QmSioyvQuXetxg7uo8FswGn9XKKEsisDq1HTMzGyWbw2R6",
			check: wantEntries(map[string]string{"dir2/sub1": "QmeQwX5qAX18fcPDxDdkfM6ttuFCZetF5hgeUa6ov8D5oc"})},
		// t0047:292-302,360-363 "can recursively set directory mode" (--mode=0753
		// on every entry). The script pins only the sorted list; which entry is
		// the root (QmccnAQQ…) was read from kubo 0.43.1's `ipfs add -Qr --mode=0753`
		// on the same tree.
		{name: "tree/custom-mode", build: t0047Tree(0o753, time.Time{}), profile: v0, o: profile.Overrides{Metadata: mode}, want: "QmccnAQQeJGtmtgZoi3hpEmgdxbuX1ao2hQmrKmmwQnCn9",
			check: wantAllCIDs(
				"QmNZ5cyx3f6maXkczwhh3ufjDCh9f3k9zrDhX218ZZGvoV", "QmRqtFVLkXfWJuqWtYiCPthgomo3gouno8uvMeGAyCVaWS",
				"QmSkrWNcyDA7s1qiT6Ps7ey4zcB7uBH3sqGcKRfW4UMKhM", "QmSkrWNcyDA7s1qiT6Ps7ey4zcB7uBH3sqGcKRfW4UMKhM",
				"QmSkrWNcyDA7s1qiT6Ps7ey4zcB7uBH3sqGcKRfW4UMKhM", "QmZNAZXB6JyJ1cK9h1uJEK4XDo1CKsSuHMPGUUMrzDXCQz",
				"QmbSz6GyS8MNR4M9xtCteuGVJQRYkCXLbW174Fdy8jtaoZ", "QmccnAQQeJGtmtgZoi3hpEmgdxbuX1ao2hQmrKmmwQnCn9",
				"QmeTZoiAiduFY2hXaNQP4ehiE71BrQFEnrqduBZ5ZjHuFy", "Qmf13KNurvAHUfMBhMWvZuftmUikhhGY7ohWVaBDDndFMz",
			)},
		// t0047:303-313,365-368 "can recursively set directory mtime"
		// (--mtime=1603539720 on every entry); root QmXhzoPK… as read from kubo
		// 0.43.1's `ipfs add -Qr --mtime=1603539720` on the same tree.
		{name: "tree/custom-mtime", build: t0047Tree(0, custom), profile: v0, o: profile.Overrides{Metadata: mtime}, want: "QmXhzoPKuqmkqbyr4kJFznFRXtGwriCXKGFPr4vviyK3aV",
			check: wantAllCIDs(
				"QmPCGFZ8ZFowAwfWdCeGsr9wSbGXwZiHW3bZ7XSYcc1Zby", "QmT3aY4avDcYXCWpU8CJzqUkW7YEuEsx36S8cTNoLcuK1B",
				"QmT3aY4avDcYXCWpU8CJzqUkW7YEuEsx36S8cTNoLcuK1B", "QmT3aY4avDcYXCWpU8CJzqUkW7YEuEsx36S8cTNoLcuK1B",
				"QmUGMu9epCEz5HMsuJFgpJxxt3HoahsTQcC65Jje6LNqYF", "QmXhzoPKuqmkqbyr4kJFznFRXtGwriCXKGFPr4vviyK3aV",
				"QmZ5wKCcL11TckypuDTKLLNFP6JMCBJRCn385XKQQ6PCLt", "Qmdw3hiAxn6R5MRkkdzLdFvZUa2WJeLCTXXCyB8byFsHSA",
				"QmedF4m2Y8341azfkpvaHSkxbSrZa4fo6FT25h6sRUVkpq", "QmfWitW6F13WHFXLbJzXRYmwrS1p4gaAJAfucUSMytRPn3",
			)},
	})
}

// --- (c) t0260: HAMT sharding --------------------------------------------------------

// t0260Data is t0260-sharding.sh:11-17: testdata/file1..file2000, each "$i\n".
func t0260Data(t testing.TB, dir string) string {
	root := filepath.Join(dir, "testdata")
	fxMkdir(t, root, 0o755)
	for i := 1; i <= 2000; i++ {
		fxWrite(t, filepath.Join(root, fmt.Sprintf("file%d", i)), fmt.Appendf(nil, "%d\n", i), 0o644)
	}
	return root
}

func TestKnownAnswerT0260Sharding(t *testing.T) {
	t0260Data := shared(t, t0260Data)
	runKnown(t, []knownCase{
		// t0260:34-40 Import.UnixFSHAMTDirectorySizeThreshold "1G": never shards.
		{name: "unsharded-1G", build: t0260Data, profile: v0, o: profile.Overrides{HAMTThreshold: ptr(1 << 30)}, want: "QmavrTrQG4VhoJmantURAYuw3bowq3E2WcvP36NRQDAC1N",
			check: wantDirKind(false)},
		// t0260:48-53 threshold "1B": always shards; t0260:93-96 resolves
		// file100 to QmZ3RfWk… through the shard.
		{name: "sharded-1B", build: t0260Data, profile: v0, o: profile.Overrides{HAMTThreshold: ptr(1)}, want: "QmSCJD1KYLhVVHqBK3YyXuoEqHt7vggyJhzoFYbT8v1XYL",
			check: func(t *testing.T, store *blockstore.Store, root cid.Cid) {
				wantDirKind(true)(t, store, root)
				wantEntries(map[string]string{"file100": "QmZ3RfWk1u5LEGYLHA633B5TNJy3Du27K6Fny9wcxpowGS"})(t, store, root)
			}},
		// t0260:115-117 `ipfs add -r -Q --cid-version=1` with the 1B threshold still set.
		{name: "sharded-1B-cidv1", build: t0260Data, profile: v0, o: profile.Overrides{HAMTThreshold: ptr(1), CIDVersion: ptr(1), RawLeaves: ptr(true)}, want: "bafybeibiemewfzzdyhq2l74wrd6qj2oz42usjlktgnlqv4yfawgouaqn4u",
			check: wantDirKind(true)},
		// Default v0 threshold (256 KiB links-bytes): 2000 short names stay
		// basic, so the default gives the unsharded root of t0260:34.
		{name: "default-threshold", build: t0260Data, profile: v0, want: "QmavrTrQG4VhoJmantURAYuw3bowq3E2WcvP36NRQDAC1N"},
	})
}

// --- (d) t0040: add and cat ------------------------------------------------------------

// t0040Planets is add_directory (t0040:789-797).
var t0040Planets = tree(map[string]string{"mars.txt": "Hello Mars!\n", "venus.txt": "Hello Venus!\n"})

// t0040Big is `random-data -size=N -seed=S` (t0040:487-495, 597-605),
// checked against the sha1 multihash the script pins.
func t0040Big(size int64, seed, sha1Multihash string) func(testing.TB, string) string {
	return func(t testing.TB, dir string) string {
		p := filepath.Join(dir, "bigfile")
		fxWriteFrom(t, p, randomData(size, seed), 0o644)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h := sha1.New()
		if _, err := io.Copy(h, f); err != nil {
			t.Fatal(err)
		}
		if got := "1114" + hex.EncodeToString(h.Sum(nil)); got != sha1Multihash {
			t.Fatalf("random-data -seed=%s: sha1 multihash %s, the script expects %s", seed, got, sha1Multihash)
		}
		return p
	}
}

func TestKnownAnswerT0040AddCat(t *testing.T) {
	const (
		sha1Of5MB   = "11141d13cfb2c207591376e06bc2360741c2009b2898" // t0040:492
		sha1Of100MB = "1114acba57d18295a18b428faf88960fa47a71eb22cc" // t0040:602
	)
	big5 := t0040Big(5242880, "41", sha1Of5MB)
	big100 := t0040Big(104857600, "42", sha1Of100MB)
	const rawLeavesV0 = "kubo accepts --raw-leaves with CIDv0 (a CIDv0 dag-pb root over CIDv1 raw leaves) " +
		"but profile.New/Validate rejects it (\"raw leaves need CIDv1\"), although README says kubo's --raw-leaves is accepted with kubo's meaning"
	runKnown(t, []knownCase{
		// t0040:30-38 `echo "Hello Worlds!" >mountdir/hello.txt; ipfs add`.
		{name: "hello", build: text("Hello Worlds!\n"), profile: v0, want: "QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH"},
		// t0040:148-156 `ipfs add -t` (trickle).
		{name: "hello-trickle", build: text("Hello Worlds!\n"), profile: v0, o: profile.Overrides{Trickle: ptr(true)}, want: "QmUkUQgxXeggyaD5Ckv8ZqfW8wHBX6cYyeiyqvVZYzq5Bi"},
		// t0040:168-176 --chunker=size-64.
		{name: "hello-size-64", build: text("Hello Worlds!\n"), profile: v0, o: profile.Overrides{Chunker: ptr("size-64")}, want: "QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH"},
		// t0040:182-190 --chunker rabin-36-512-1024.
		{name: "hello-rabin-36-512-1024", build: text("Hello Worlds!\n"), profile: v0, o: profile.Overrides{Chunker: ptr("rabin-36-512-1024")}, want: "QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH"},
		// t0040:196-204 --chunker buzhash.
		{name: "hello-buzhash", build: text("Hello Worlds!\n"), profile: v0, o: profile.Overrides{Chunker: ptr("buzhash")}, want: "QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH"},
		// t0040:217-225 zero-length file.
		{name: "zero-length", build: text(""), profile: v0, want: "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"},
		// t0040:235-240 `echo "IPFS" | ipfs add --stdin-name file.txt`.
		{name: "stdin-IPFS", build: text("IPFS\n"), profile: v0, want: "QmdFyxZXsFiP4csgfM5uPu99AvFiKH62CSPDw5TP92nr7w"},
		// t0040:256-269 `ipfs add -r .` of hey = "Hey\n", hello/world = "World\n".
		{name: "current-dir", build: tree(map[string]string{"hey": "Hey\n", "hello/world": "World\n"}), profile: v0, want: "QmZQWnfcqJ6hNkkPvrY9Q5X39GP3jUnUbAV4AbmbbR3Cb1"},
		// t0040:288-296 `ipfs add --cid-base=base32` prints the CIDv0 root as CIDv1.
		{name: "base32-test", build: text("base32 test\n"), profile: v0, wantV1: true, want: "bafybeibyosqxljd2eptb4ebbtvk7pb4aoxzqa6ttdsflty6rsslz5y6i34"},
		// t0040:338-346 hello2.txt = "Helloo Worlds!\n".
		{name: "hello2", build: text("Helloo Worlds!\n"), profile: v0, want: "Qmf35k66MZNW2GijohUmXQEWKZU4cCGTCwK6idfnt152wJ"},
		// t0040:403-409,458-463 `ipfs add --cid-version 1 -r test` of mfs1.txt, mfs2.txt.
		{name: "mfs-test-dir-cidv1", build: tree(map[string]string{"mfs1.txt": "file1\n", "mfs2.txt": "file2\n"}), profile: v0, o: profile.Overrides{CIDVersion: ptr(1), RawLeaves: ptr(true)}, want: "bafybeic7xwqwovt4g4bax6d3udp6222i63vj2rblpbim7uy2uw4a5gahha",
			check: wantEntries(map[string]string{
				"mfs1.txt": "bafkreihm3rktn5z33luic3youqdsn326toaq3ekesmdvsa53sbrd3f5r3a",
				"mfs2.txt": "bafkreidh5zkhr2vnwa2luwmuj24xo6l3jhfgvkgtk5cyp43oxs7owzpxby",
			})},
		// t0040:740-748 venus.txt = "Hello Venus!\n".
		{name: "venus", build: text("Hello Venus!\n"), profile: v0, want: "QmU5kp3BH3B8tnWUU2Pikdb2maksBNkb92FHRr56hyghh4"},
		// t0040:751-758 `echo "Hello Jupiter!" | ipfs add -q`.
		{name: "jupiter", build: text("Hello Jupiter!\n"), profile: v0, want: "QmUnvPcBctVTAcJpigv6KMqDvmDewksPWrNVoy1E1WP5fh"},
		// t0040:770-777 `printf "Hello Neptune!\nHello Pluton!" | ipfs add`.
		{name: "neptune", build: text("Hello Neptune!\nHello Pluton!"), profile: v0, want: "QmZDhWpi8NvKrekaYYhxKCdNVGWsFFe1CREnAjP1QbPaB3"},
		// t0040:855-858 add_directory with no flags.
		{name: "planets", build: t0040Planets, profile: v0, want: "QmWSgS32xQEcXMeqd3YPJLrNBLSdsfYCep2U7CFkyrjXwY",
			check: wantEntries(map[string]string{"mars.txt": "QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN", "venus.txt": "QmU5kp3BH3B8tnWUU2Pikdb2maksBNkb92FHRr56hyghh4"})},
		// t0040:860-863 add_directory '--raw-leaves' (CIDv0 root, raw leaves).
		{name: "planets-raw-leaves", build: t0040Planets, profile: v0, o: profile.Overrides{RawLeaves: ptr(true)}, want: "QmfWfQfKCY5Ukv9peBbxM5vqWM9BzmqUSXvdCgjT2wsiBT", bug: rawLeavesV0},
		// t0040:865-868 add_directory '--cid-version=1'.
		{name: "planets-cidv1", build: t0040Planets, profile: v0, o: profile.Overrides{CIDVersion: ptr(1), RawLeaves: ptr(true)}, want: "bafybeih7e5dmkyk25up5vxug4q3hrg2fxbzf23dfrac2fns5h7z4aa7ioi",
			check: wantEntries(map[string]string{"mars.txt": "bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4", "venus.txt": "bafkreihfsphazrk2ilejpekyltjeh5k4yvwgjuwg26ueafohqioeo3sdca"})},
		// t0040:870-873 add_directory '--cid-version=1 --raw-leaves=false'.
		{name: "planets-cidv1-no-raw-leaves", build: t0040Planets, profile: v0, o: profile.Overrides{CIDVersion: ptr(1), RawLeaves: ptr(false)}, want: "bafybeif5tuep5ap2d7zyhbktucey75aoacxufgt6i3v4gebmixyipnyp7y",
			check: wantEntries(map[string]string{"mars.txt": "bafybeiawta2ntdmsy24aro35w3homzl4ak7svr3si7l7gesvq4erglyye4", "venus.txt": "bafybeicvkvhs2fr75ynebtdjqpgm4g2fc63abqbmysupwpmcjl4gx7mzrm"})},
		// t0040:875-878 add_directory '--hash=blake2b-256' (implies CIDv1 and raw leaves).
		{name: "planets-blake2b-256", build: t0040Planets, profile: v0, o: profile.Overrides{Hash: ptr("blake2b-256"), CIDVersion: ptr(1), RawLeaves: ptr(true)}, want: "bafykbzaceaptbcs7ik5mdfpot3b4ackvxlwh7loc5jcrtkayf64ukl7zyk46e",
			check: wantEntries(map[string]string{"mars.txt": "bafk2bzaceaqcxw46uzkyd2jmczoogof6pnkqt4dpiv3pwkunsv4g5rkkmecie", "venus.txt": "bafk2bzacebxnke2fb5mgzxyjuuavvcfht4fd3gvn4klkujz6k72wboynhuvfw"})},
		// t0040:880-903 `ipfs add -rn mountdir/moons`.
		{name: "moons", profile: v0, want: "QmbGoaQZm8kjYfCiN1aBsgwhqfUBGDYTrDb91Mz7Dvq81B",
			build: tree(map[string]string{"jupiter/europa.txt": "Hello Europa!\n", "saturn/titan.txt": "Hello Titan!\n", "mercury.txt": "hey you are no moon!\n"}),
			check: wantEntries(map[string]string{
				"jupiter/europa.txt": "Qmbjg7zWdqdMaK2BucPncJQDxiALExph5k3NkQv5RHpccu", "jupiter": "QmS5mZddhFPLWFX3w6FzAy9QxyYkaxvUpsWCtZ3r7jub9J",
				"saturn": "QmaMagZT4rTE7Nonw8KGSK4oe1bh533yhZrCo1HihSG8FK", "saturn/titan.txt": "QmZzppb9WHn552rmRqpPfgU5FEiHH6gDwi3MrB9cTdPwdb",
				"mercury.txt": "QmRsTB5CpEUvDUpDgHCzb3VftZ139zrk9zs5ZcgYh9TMPJ",
			})},
		// t0040:909 test_add_cat_5MB "".
		{name: "5MB", build: big5, profile: v0, want: "QmbW8FAUE5nJ2EccaFGLQtubacZr9VP1m6KLBniL7yzXpF"},
		// t0040:911 test_add_cat_5MB --raw-leaves.
		{name: "5MB-raw-leaves", build: big5, profile: v0, o: profile.Overrides{RawLeaves: ptr(true)}, want: "Qmf6a54RFHB3sAH5Beh5pha6Y8UZz22pfDKZAgmQ2UvLJH", bug: rawLeavesV0},
		// t0040:913-915 --cid-version=1.
		{name: "5MB-cidv1", build: big5, profile: v0, o: profile.Overrides{CIDVersion: ptr(1), RawLeaves: ptr(true)}, want: "bafybeihy7ngsovmm2dqanlpjeddvs7kshb4bdwrue3pe5nsf6rkn3hg45y"},
		// t0040:917-920 '--cid-version=1 --raw-leaves=false'.
		{name: "5MB-cidv1-no-raw-leaves", build: big5, profile: v0, o: profile.Overrides{CIDVersion: ptr(1), RawLeaves: ptr(false)}, want: "bafybeie4nox52gy5qpv5bhbrzrfgpwwdfpk257v2ixy66whvqdjd67r3fq"},
		// t0040:922-925 --hash=blake2b-256.
		{name: "5MB-blake2b-256", build: big5, profile: v0, o: profile.Overrides{Hash: ptr("blake2b-256"), CIDVersion: ptr(1), RawLeaves: ptr(true)}, want: "bafykbzacebiss6bbf5ynrrcsweg66zau5p6w2a52scmpgcxaaeqremw5vpy22"},
		// t0040:927-929 '--hash=blake2b-256 --raw-leaves=false'.
		{name: "5MB-blake2b-256-no-raw-leaves", build: big5, profile: v0, o: profile.Overrides{Hash: ptr("blake2b-256"), CIDVersion: ptr(1), RawLeaves: ptr(false)}, want: "bafykbzacecn3yylzcrinh2mf3kcwxrql4haddl6pb4wmnkc6wurtfqi2mghhy"},
		// t0040:931 test_add_cat_expensive "" (EXPENSIVE in sharness too).
		{name: "100MB", build: big100, profile: v0, size: 104857600, want: "QmPYo95xiEmcqiqWpqg9iwHgcbWi7n4fQuP27xCNQLmytG"},
		// t0040:933-935 --cid-version=1.
		{name: "100MB-cidv1", build: big100, profile: v0, o: profile.Overrides{CIDVersion: ptr(1), RawLeaves: ptr(true)}, size: 104857600, want: "bafybeidwwhjvrpu2j34ppvr2swm2u55ljcuhqzm7s5xd7rlsvlu7ny2rry"},
		// t0040:937-940 --hash=blake2b-256.
		{name: "100MB-blake2b-256", build: big100, profile: v0, o: profile.Overrides{Hash: ptr("blake2b-256"), CIDVersion: ptr(1), RawLeaves: ptr(true)}, size: 104857600, want: "bafykbzacebosow2qjoynvjq2qmjuhh6qgkxqwjpqqreucu5idbq3n75wobtxa"},
	})
}

// TestKnownAnswerT0040Rejects: option values kubo refuses must be refused.
func TestKnownAnswerT0040Rejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    profile.Overrides
	}{
		// t0040:178-180 `ipfs add --chunker=size-0` fails.
		{"chunker-size-0", profile.Overrides{Chunker: ptr("size-0")}},
		// t0040:192-194 `ipfs add --chunker rabin-12-512-1024` fails (min below 16).
		{"chunker-rabin-12-512-1024", profile.Overrides{Chunker: ptr("rabin-12-512-1024")}},
		// t0040:948-952 `ipfs add --cid-version=9` fails.
		{"cid-version-9", profile.Overrides{CIDVersion: ptr(9)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Metadata = ptr("none")
			if p, err := profile.New(v0, tc.o); err == nil {
				t.Errorf("profile.New accepted%s: %s", describe(tc.o), p)
			}
		})
	}
}

// --- t0044: symlinks ------------------------------------------------------------

// t0044Files is t0044-add-symlink.sh:11-17.
func t0044Files(t testing.TB, dir string) string {
	root := filepath.Join(dir, "files")
	fxMkdir(t, filepath.Join(root, "foo"), 0o755)
	fxMkdir(t, filepath.Join(root, "bar"), 0o755)
	fxWrite(t, filepath.Join(root, "foo/baz"), []byte("some text\n"), 0o644)
	fxSymlink(t, "files/foo/baz", filepath.Join(root, "bar/baz"))
	fxSymlink(t, "files/does/not/exist", filepath.Join(root, "bad"))
	return root
}

func TestKnownAnswerT0044Symlink(t *testing.T) {
	runKnown(t, []knownCase{
		// t0044:20-27 `ipfs add -Q -r files`.
		{name: "files", build: t0044Files, profile: v0, want: "QmWdiHKoeSW8G1u7ATCgpx4yMoUhYaJBQGkyPLkS9goYZ8"},
		// t0044:29-36 `ipfs add -Q -r --cid-version=1 files`.
		{name: "files-cidv1", build: t0044Files, profile: v0, o: profile.Overrides{CIDVersion: ptr(1), RawLeaves: ptr(true)}, want: "bafybeibyhlx64cklod6isy3h7tsmr4qvam3ae3b74n3hfes5bythjrwyua"},
		// t0044:38-45 "adding a symlink adds the link itself": files/bar/baz.
		{name: "good-link", profile: v0, want: "QmdocmZeF7qwPT9Z8SiVhMSyKA2KKoA2J7jToW6z6WBmxR",
			build: func(t testing.TB, dir string) string { return filepath.Join(t0044Files(t, dir), "bar/baz") }},
		// t0044:47-54 "adding a broken symlink works": files/bad.
		{name: "broken-link", profile: v0, want: "QmWYN8SEXCgNT2PSjB6BnxAx6NJQtazWoBkTRH9GRfPFFQ",
			build: func(t testing.TB, dir string) string { return filepath.Join(t0044Files(t, dir), "bad") }},
	})
}

// The sharness scripts run kubo without an import profile, where
// --cid-version=1 implies raw leaves; under a profile (which always sets
// raw leaves) it does not, so those rows spell raw leaves out. Likewise a
// non-sha2-256 --hash upgrades to CIDv1 only without a profile.

// --- checks ------------------------------------------------------------------------

// wantDirKind checks the root is (or is not) a HAMT shard.
func wantDirKind(hamt bool) func(*testing.T, *blockstore.Store, cid.Cid) {
	return func(t *testing.T, store *blockstore.Store, root cid.Cid) {
		t.Helper()
		e := dagList(t, store.Blockstore(), root)[""]
		if e.Type != "dir" || e.HAMT != hamt {
			t.Errorf("root is %s (HAMT %t), want a directory with HAMT %t", e.Type, e.HAMT, hamt)
		}
	}
}

// wantEntries checks the CIDs of named entries.
func wantEntries(want map[string]string) func(*testing.T, *blockstore.Store, cid.Cid) {
	return func(t *testing.T, store *blockstore.Store, root cid.Cid) {
		t.Helper()
		got := dagList(t, store.Blockstore(), root)
		for p, c := range want {
			if e, ok := got[p]; !ok {
				t.Errorf("%s: missing", p)
			} else if e.Cid.String() != c {
				t.Errorf("%s = %s, want %s", p, e.Cid, c)
			}
		}
	}
}

// wantAllCIDs compares the sorted CIDs of every entry, the root included,
// with what `ipfs add -qr … | sort` printed.
func wantAllCIDs(want ...string) func(*testing.T, *blockstore.Store, cid.Cid) {
	return func(t *testing.T, store *blockstore.Store, root cid.Cid) {
		t.Helper()
		var got []string
		for _, e := range dagList(t, store.Blockstore(), root) {
			got = append(got, e.Cid.String())
		}
		slices.Sort(got)
		want = slices.Clone(want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("entry CIDs:\n got %v\nwant %v", got, want)
		}
	}
}

// --- the source itself a file or symlink ---------------------------------------

const singleSourceChild = "IPFS_SYNC_TEST_SINGLE_SOURCE_CHILD"

// TestKnownAnswerSingleSource imports a file or symlink as the source
// itself, as `ipfs add FILE` does (runKnown imports such inputs through
// their directory). Each row runs in a child test process, so a crash in
// the import fails that row instead of the whole test binary.
func TestKnownAnswerSingleSource(t *testing.T) {
	cases := []knownCase{
		// t0040:30-38, as in TestKnownAnswerT0040AddCat/hello.
		{name: "t0040-hello", build: text("Hello Worlds!\n"), profile: v0, want: "QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH"},
		// specs ipip-0499.md "Test fixtures"; kubo cid_profiles_test.go:152.
		{name: "ipip499-v1-small-file", build: text("hello world"), profile: v1, want: "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"},
		// t0047:22,78-83 "can preserve file mode and modification time".
		{name: "t0047-file-mode-and-mtime", build: t0047File(0o640, time.Unix(t0047PreserveMTime, 0)), profile: v0, o: profile.Overrides{Metadata: ptr("mode,mtime")}, want: "QmYkvboLsvLFcSYmqVJRxvBdYRQLroLv9kELf3LRiCqBri"},
		// t0047:32,130-134 "can set symlink modification time nanoseconds".
		{name: "t0047-symlink-mtime-nsecs", build: t0047Link(time.Unix(t0047CustomMTime, t0047CustomNsecs)), profile: v0, o: profile.Overrides{Metadata: ptr("mtime")}, want: "QmPHYCxYvvHj6VxiPNJ3kXxcPsnJLDYUJqsDJWjvytmrmY"},
		// t0044:38-45 "adding a symlink adds the link itself".
		{name: "t0044-good-link", profile: v0, want: "QmdocmZeF7qwPT9Z8SiVhMSyKA2KKoA2J7jToW6z6WBmxR",
			build: func(t testing.TB, dir string) string { return filepath.Join(t0044Files(t, dir), "bar/baz") }},
	}
	if os.Getenv(singleSourceChild) != "" {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				o := tc.o
				if o.Metadata == nil {
					o.Metadata = ptr("none")
				}
				p := fxProfile(t, tc.profile, o)
				root, _ := fxImport(t, tc.build(t, t.TempDir()), p)
				checkKnown(t, tc, p, root)
			})
		}
		return
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0],
				"-test.run=^TestKnownAnswerSingleSource$/^"+regexp.QuoteMeta(tc.name)+"$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), singleSourceChild+"=1")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("importing the %s itself failed (%v); child test output:\n%s", tc.name, err, lastLines(out, 25))
			}
		})
	}
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"…"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
