package pull

import (
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// TestExactCopy: after a pull DEST holds ROOT and nothing else (pull's
// state is kept in the repository), so a ROOT may itself hold an entry of
// any name, and pulling a second time leaves DEST as exact as the first.
func TestExactCopy(t *testing.T) {
	g := newDAGStore(t)
	tree := sample()
	tree.kids[".ipfs-sync-pull"] = dir(0o755, t0, map[string]*spec{"state.json": file("{}", 0o644, t0)})
	root := g.build(tree)
	dest := filepath.Join(t.TempDir(), "dest")
	src := &Store{BS: g.bs}
	for run := range 2 {
		mustPull(t, src, root, dest)
		checkTree(t, dest, tree)
		var extra []string
		filepath.WalkDir(dest, func(path string, d os.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(d.Name(), ".ipfs-sync") && path != filepath.Join(dest, ".ipfs-sync-pull") && !strings.HasPrefix(path, filepath.Join(dest, ".ipfs-sync-pull")+"/") {
				extra = append(extra, path)
			}
			return nil
		})
		if len(extra) > 0 {
			t.Errorf("run %d: pull left %v in DEST", run, extra)
		}
	}
}

// pullStates lists the state directories in repo, each with what its
// state.json says.
func pullStates(t *testing.T, repo string) map[string]savedState {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(repo, statesDir))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]savedState{}
	for _, de := range des {
		var s savedState
		data, err := os.ReadFile(filepath.Join(repo, statesDir, de.Name(), stateFile))
		if err == nil {
			err = json.Unmarshal(data, &s)
		}
		if err != nil {
			t.Fatalf("state %s: %v", de.Name(), err)
		}
		out[de.Name()] = s
	}
	return out
}

// TestStateKeyedByDest: the state lives in the repository, one per DEST,
// found by DEST's real path and told apart by its device and inode: a
// directory put in DEST's place (moved, restored, re-created) is not
// mistaken for the one pulled into, and a DEST named through a symlink
// is the directory it points to.
func TestStateKeyedByDest(t *testing.T) {
	g := newDAGStore(t)
	tree := sample()
	root := g.build(tree)
	src := &Store{BS: g.bs}
	parent := t.TempDir()
	dest := filepath.Join(parent, "dest")
	repo := filepath.Join(parent, "repo")

	if res := mustPull(t, src, root, dest); res.Previous != nil {
		t.Fatalf("first pull has a previous root")
	}
	states := pullStates(t, repo)
	if len(states) != 1 {
		t.Fatalf("%d states, want 1", len(states))
	}
	for _, s := range states {
		if s.Dest != dest || s.Root != root.String() || s.Ino == 0 {
			t.Errorf("state %+v, want DEST %s and root %s", s, dest, root)
		}
	}
	link := filepath.Join(parent, "link")
	if err := os.Symlink("dest", link); err != nil {
		t.Fatal(err)
	}
	if res := mustPull(t, src, root, link); res.Previous == nil || res.FilesWritten != 0 {
		t.Errorf("pull through a symlink to DEST: %+v, want the state of DEST", res)
	}

	// Another directory at DEST's path is a new DEST.
	if err := os.Rename(dest, filepath.Join(parent, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	if res := mustPull(t, src, root, dest); res.Previous != nil || res.FilesWritten != 52 {
		t.Errorf("pull into a new directory at DEST's path: %+v, want a first pull", res)
	}
	checkTree(t, dest, tree)
	if states := pullStates(t, repo); len(states) != 1 {
		t.Errorf("%d states, want DEST's one", len(states))
	}
}

// TestLegacyStateAdopted: a DEST pulled by an earlier version holds its
// state in DEST/.ipfs-sync-pull. The next pull takes the index and the
// cache over into the repository (nothing is fetched again, the previous
// root is known) and removes the directory from DEST.
func TestLegacyStateAdopted(t *testing.T) {
	g := newDAGStore(t)
	tree := sample()
	root := g.build(tree)
	src := &Store{BS: g.bs}
	dest := filepath.Join(t.TempDir(), "dest")
	repo := filepath.Join(filepath.Dir(dest), "repo")
	mustPull(t, src, root, dest)
	// Make it the earlier layout: the state's logs in DEST, none in the
	// repository.
	var dir string
	for name := range pullStates(t, repo) {
		dir = filepath.Join(repo, statesDir, name)
	}
	legacy := filepath.Join(dest, legacyStateDir)
	if err := os.Mkdir(legacy, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{indexFile, cacheFile} {
		if err := os.Rename(filepath.Join(dir, f), filepath.Join(legacy, f)); err != nil {
			t.Fatal(err)
		}
	}
	old := `{"root":"` + root.String() + `","time":"2024-03-01T12:00:00Z"}` + "\n"
	if err := os.WriteFile(filepath.Join(legacy, stateFile), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(repo, statesDir)); err != nil {
		t.Fatal(err)
	}

	next := tree.clone()
	next.kids["README"] = file("a new readme\n", 0o644, t0)
	newRoot := g.build(next)
	before := src.Counters().Blocks
	res := mustPull(t, src, newRoot, dest)
	checkTree(t, dest, next)
	if res.Previous == nil || *res.Previous != root.String() || res.FilesWritten != 1 {
		t.Errorf("pull after the earlier layout: %+v, want previous %s and one file written", res, root)
	}
	if n := src.Counters().Blocks - before; n > 3 {
		t.Errorf("fetched %d blocks: the cache was not adopted", n)
	}
}

// The index's records keep their format: each encodes to the bytes
// earlier versions wrote (a DEST's state outlives an upgrade), and decodes
// to a record that passes the quick check against the lstat it was made
// from, an mtime past 2262 too (its nanoseconds overflow int64 alike in
// lstat's terms and in the index).
func TestRecordFormat(t *testing.T) {
	c := cid.NewCidV1(cid.Raw, []byte{0x00, 0x03, 'a', 'b', 'c'})
	for _, tc := range []struct {
		rec  record
		want string // hex
	}{
		{record{Path: "pool/a.deb", Cid: c, Local: metadata.Stat{Type: metadata.File, Size: 3, MTime: time.Unix(1_700_000_000, 123_456_789).UTC(), Mode: 0o644}},
			"0a706f6f6c2f612e64656207015500036162630106aab4aed8c7bfce972fa403"},
		{record{Path: "tools/run", Cid: c, Local: metadata.Stat{Type: metadata.File, MTime: time.Unix(0, -5).UTC(), Mode: 0o755 | fs.ModeSetuid}},
			"09746f6f6c732f72756e0701550003616263010009ed13"},
		{record{Path: "pool", Cid: c, Local: metadata.Stat{Type: metadata.Dir, MTime: time.Unix(1_600_000_000, 1).UTC(), Mode: fs.ModeDir | fs.ModeSticky | 0o777, CTime: 1_700_000_001_000_000_002}},
			"04706f6f6c070155000361626302008280808abbe1abb42cff0784a8a69ccebfce972f"},
		{record{Path: "kept", Cid: c, Local: metadata.Stat{Type: metadata.Dir, MTime: time.Unix(0, 1).UTC(), Mode: fs.ModeDir | 0o755, CTime: -1}},
			"046b6570740701550003616263020002ed0301"},
		{record{Path: "link", Cid: c, Local: metadata.Stat{Type: metadata.Symlink, Size: 8, MTime: time.Unix(10_000_000_000, 5).UTC(), Mode: fs.ModeSymlink | 0o777}},
			"046c696e6b07015500036162630310f5ffbfe1eebeeeb8ea01ff03"},
		{record{Path: "gone"}, "04676f6e650000000000"},
	} {
		t.Run(tc.rec.Path, func(t *testing.T) {
			b := encodeRecord(tc.rec)
			if got := hex.EncodeToString(b); got != tc.want {
				t.Fatalf("encoded %s, want %s", got, tc.want)
			}
			r, ok := decodeRecord(b)
			if !ok || r.Path != tc.rec.Path || !r.Cid.Equals(tc.rec.Cid) {
				t.Fatalf("decoded %v %q %s, want %q %s", ok, r.Path, r.Cid, tc.rec.Path, tc.rec.Cid)
			}
			if tc.rec.Cid.Defined() && !sameLocal(r.Local, tc.rec.Local) {
				t.Errorf("decoded %+v, which fails the quick check against %+v", r.Local, tc.rec.Local)
			}
		})
	}
}
