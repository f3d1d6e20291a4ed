package sync_test

// Test-data helpers shared by the known-answer, read-back and globals tests:
// importing a directory into a fresh store, recreating the deterministic
// inputs kubo's tests use, setting modes and mtimes without following
// symlinks, and listing a stored DAG back as paths.

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/boxo/blockservice"
	bstore "github.com/ipfs/boxo/blockstore"
	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"golang.org/x/crypto/chacha20"
	"golang.org/x/sys/unix"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/profile"
	isync "github.com/ipfs-sync/ipfs-sync/sync"
)

func ptr[T any](v T) *T { return &v }

// fxProfile builds a profile or fails the test.
func fxProfile(t testing.TB, name string, o profile.Overrides) profile.Profile {
	t.Helper()
	p, err := profile.New(name, o)
	if err != nil {
		t.Fatalf("profile.New(%q): %v", name, err)
	}
	return p
}

// fxImport imports src (a directory, file or symlink) into a fresh store,
// dotfiles included as kubo's -H does, and returns the root and the store.
func fxImport(t testing.TB, src string, p profile.Profile) (cid.Cid, *blockstore.Store) {
	t.Helper()
	store, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatalf("blockstore.Open: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	return fxRun(t, store, src, p), store
}

// fxRun syncs src into store under the ref named after src: a full import
// the first time, an incremental one against the ref's root after that.
func fxRun(t testing.TB, store *blockstore.Store, src string, p profile.Profile) cid.Cid {
	t.Helper()
	sum, err := isync.Run(t.Context(), store, isync.Options{Src: src, Profile: p, Filter: diff.Filter{Hidden: true}})
	if err != nil {
		t.Fatalf("sync.Run(%s, %s): %v", src, p, err)
	}
	root, err := cid.Decode(sum.Root)
	if err != nil {
		t.Fatalf("summary root %q: %v", sum.Root, err)
	}
	return root
}

// --- deterministic inputs ----------------------------------------------------

// kuboRandom reproduces kubo's test/cli/testutils.DeterministicRandomReaderBytes
// (random_deterministic.go): the ChaCha20 keystream keyed with sha256(seed)
// and a zero nonce, cut to size bytes. kubo's harness IPFSAddDeterministic*
// and the IPIP-499 fixtures are built from it.
func kuboRandom(size int64, seed string) io.Reader {
	key := sha256.Sum256([]byte(seed))
	var nonce [chacha20.NonceSize]byte
	c, err := chacha20.NewUnauthenticatedCipher(key[:], nonce[:])
	if err != nil {
		panic(err)
	}
	return &keystream{c: c, left: size}
}

type keystream struct {
	c    *chacha20.Cipher
	left int64
}

func (k *keystream) Read(p []byte) (int, error) {
	if k.left <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), k.left))
	clear(p[:n])
	k.c.XORKeyStream(p[:n], p[:n])
	k.left -= int64(n)
	return n, nil
}

// randomData reproduces the `random-data -size=N -seed=S` tool kubo's
// sharness uses (github.com/ipfs/go-test cli/random-data): math/rand/v2's
// ChaCha8 seeded with sha256(seed).
func randomData(size int64, seed string) io.Reader {
	return io.LimitReader(rand.NewChaCha8(sha256.Sum256([]byte(seed))), size)
}

// kuboAlphabetEasy is kubo's test/cli/testutils.AlphabetEasy ('0' twice).
const kuboAlphabetEasy = "abcdefghijklmnopqrstuvwxyz01234567890-_"

// kuboHAMTDir recreates kubo's test/cli/add_test.go createDeterministicFiles:
// n files holding "x", named from the ChaCha20 stream of seed mapped onto
// AlphabetEasy; the last name has lastLen characters, the others nameLen.
// The files after the first are hard links to it, sharing its content,
// mode and mtime (all a CID can see of a file besides its name): creating
// an inode costs several times a link (ten times on ext4), and a file each
// made these fixtures most of the package's test time.
func kuboHAMTDir(t testing.TB, dir string, n, nameLen, lastLen int, seed string) {
	t.Helper()
	r := kuboRandom(1<<20, seed)
	var first string
	for i := range n {
		l := nameLen
		if i == n-1 {
			l = lastLen
		}
		buf := make([]byte, l)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
		for j, b := range buf {
			buf[j] = kuboAlphabetEasy[int(b)%len(kuboAlphabetEasy)]
		}
		p := filepath.Join(dir, string(buf))
		if first == "" {
			fxWrite(t, p, []byte("x"), 0o644)
			first = p
		} else if err := os.Link(first, p); err != nil {
			t.Fatal(err)
		}
	}
}

// --- filesystem helpers --------------------------------------------------------

// fxWrite creates the file (and its parents) with exactly perm, whatever the umask.
func fxWrite(t testing.TB, p string, data []byte, perm fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	fxChmod(t, p, perm)
}

// fxWriteFrom streams r into a new file.
func fxWriteFrom(t testing.TB, p string, r io.Reader, perm fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	fxChmod(t, p, perm)
}

func fxMkdir(t testing.TB, p string, perm fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	fxChmod(t, p, perm)
}

func fxSymlink(t testing.TB, target, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// fxChmod sets perm, setuid, setgid and sticky bits exactly.
func fxChmod(t testing.TB, p string, perm fs.FileMode) {
	t.Helper()
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
}

// fxTouch sets p's mtime (and atime) to the nanosecond without following a
// final symlink, as `touch -h -m -d` does.
func fxTouch(t testing.TB, p string, mtime time.Time) {
	t.Helper()
	ts := unix.Timespec{Sec: mtime.Unix(), Nsec: int64(mtime.Nanosecond())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatalf("set mtime of %s: %v", p, err)
	}
}

// --- reading a DAG back ----------------------------------------------------------

// dagEntry is one entry of a stored UnixFS DAG, as a reader sees it.
type dagEntry struct {
	Cid    cid.Cid
	Type   string      // file, dir, symlink
	Mode   fs.FileMode // stored permission, setuid, setgid and sticky bits; 0 when none
	MTime  time.Time   // stored mtime; zero when none
	Target string      // symlink target
	Size   int64       // file bytes
	SHA256 [32]byte    // file content hash
	HAMT   bool        // directory stored as a HAMT shard
}

func dagService(bs bstore.Blockstore) ipld.DAGService {
	return mdag.NewDAGService(blockservice.New(bs, nil))
}

const storedModeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// dagList reads the whole DAG under root with boxo's UnixFS readers and
// returns every entry by slash-separated path ("" is the root).
func dagList(t testing.TB, bs bstore.Blockstore, root cid.Cid) map[string]dagEntry {
	t.Helper()
	out := map[string]dagEntry{}
	if err := dagListInto(t.Context(), dagService(bs), "", root, out); err != nil {
		t.Fatalf("read DAG %s: %v", root, err)
	}
	return out
}

func dagListInto(ctx context.Context, ds ipld.DAGService, p string, c cid.Cid, out map[string]dagEntry) error {
	nd, err := ds.Get(ctx, c)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	e := dagEntry{Cid: c}
	pn, isPB := nd.(*mdag.ProtoNode)
	if !isPB {
		// A raw leaf is a whole file with no metadata.
		e.Type = "file"
		e.Size = int64(len(nd.RawData()))
		e.SHA256 = sha256.Sum256(nd.RawData())
		out[p] = e
		return nil
	}
	fsn, err := ft.FSNodeFromBytes(pn.Data())
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	e.Mode = fsn.Mode() & storedModeBits
	e.MTime = fsn.ModTime()
	switch fsn.Type() {
	case ft.TFile, ft.TRaw:
		e.Type = "file"
		r, err := uio.NewDagReader(ctx, nd, ds)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, r)
		if err != nil {
			return fmt.Errorf("%s: read: %w", p, err)
		}
		e.Size = n
		copy(e.SHA256[:], h.Sum(nil))
	case ft.TSymlink:
		e.Type = "symlink"
		e.Target = string(fsn.Data())
	case ft.TDirectory, ft.THAMTShard:
		e.Type = "dir"
		e.HAMT = fsn.Type() == ft.THAMTShard
		dir, err := uio.NewDirectoryFromNode(ds, nd)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		var links []*ipld.Link
		if err := dir.ForEachLink(ctx, func(l *ipld.Link) error {
			links = append(links, l)
			return nil
		}); err != nil {
			return fmt.Errorf("%s: list: %w", p, err)
		}
		for _, l := range links {
			if l.Name == "" || strings.Contains(l.Name, "/") {
				return fmt.Errorf("%s: bad entry name %q", p, l.Name)
			}
			if _, dup := out[path.Join(p, l.Name)]; dup {
				return fmt.Errorf("%s: entry %q listed twice", p, l.Name)
			}
			if err := dagListInto(ctx, ds, path.Join(p, l.Name), l.Cid, out); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%s: unexpected UnixFS type %v", p, fsn.Type())
	}
	out[p] = e
	return nil
}

// reachable lists every block under root with boxo's own DAG walker,
// identity CIDs left out (they are never stored or exported).
func reachable(t testing.TB, bs bstore.Blockstore, root cid.Cid) *cid.Set {
	t.Helper()
	set := cid.NewSet()
	err := mdag.Walk(t.Context(), mdag.GetLinksDirect(dagService(bs)), root, set.Visit)
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	out := cid.NewSet()
	_ = set.ForEach(func(c cid.Cid) error {
		if c.Prefix().MhType != 0x00 { // identity
			out.Add(c)
		}
		return nil
	})
	return out
}
