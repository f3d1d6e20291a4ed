package pull

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
)

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// TestFirstPullIntoNonEmpty: a first pull into a directory that holds
// entries no pull wrote is refused, naming some of them, and changes
// nothing; --delete (make DEST exactly ROOT) and --no-delete (write ROOT
// over it, keeping the rest) say what to do with them.
func TestFirstPullIntoNonEmpty(t *testing.T) {
	g := newDAGStore(t)
	tree := sample()
	root := g.build(tree)
	src := &Store{BS: g.bs}
	for _, tc := range []struct {
		name string
		mode Deletion
	}{{"default", DeleteWritten}, {"delete", DeleteAll}, {"no-delete", DeleteNone}} {
		t.Run(tc.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "v")
			mustWrite(t, filepath.Join(dest, "important/t"), "x")
			mustWrite(t, filepath.Join(dest, "notes.txt"), "mine")
			before := snapshot(t, dest, "")
			res, err := pullInto(t, src, root, dest, func(o *Options) { o.Delete = tc.mode })
			switch tc.mode {
			case DeleteWritten:
				if err == nil || errors.Is(err, blockstore.ErrLocked) || !strings.Contains(err.Error(), "important") || !strings.Contains(err.Error(), "notes.txt") || !strings.Contains(err.Error(), "--delete") {
					t.Fatalf("pull into a non-empty directory: %v, want a refusal naming its entries and --delete", err)
				}
				if after := snapshot(t, dest, ""); after != before {
					t.Errorf("a refused pull changed DEST:\n%s\n%s", before, after)
				}
				// Refused, it is still a first pull.
				if _, err := pullInto(t, src, root, dest); err == nil {
					t.Errorf("second try went ahead")
				}
			case DeleteAll:
				if err != nil {
					t.Fatal(err)
				}
				checkTree(t, dest, tree)
				if res.Deleted != 2 {
					t.Errorf("deleted %d, want 2", res.Deleted)
				}
			case DeleteNone:
				if err != nil {
					t.Fatal(err)
				}
				if !exists(filepath.Join(dest, "important/t")) || !exists(filepath.Join(dest, "notes.txt")) {
					t.Errorf("--no-delete removed what DEST had")
				}
				// The next pull, without a flag, keeps them too: no pull wrote them.
				res := mustPull(t, src, root, dest)
				if !exists(filepath.Join(dest, "important/t")) || res.Kept != 2 {
					t.Errorf("a later pull: kept %d %v, want important and notes.txt kept", res.Kept, res.KeptPaths)
				}
			}
		})
	}
	// An empty directory, or none, is not in question.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	mustPull(t, src, root, empty)
	checkTree(t, empty, tree)
}

// TestLaterPullDeletesWhatItWrote: a later pull removes what the previous
// pulls wrote and ROOT no longer has, and nothing else: an entry added to
// DEST by hand, or a file pull wrote but someone changed since, is kept
// and reported, also inside a directory ROOT dropped. --delete removes
// them too.
func TestLaterPullDeletesWhatItWrote(t *testing.T) {
	g := newDAGStore(t)
	old := sample()
	oldRoot := g.build(old)
	next := old.clone()
	delete(next.kids, "README")
	delete(next.kids, "empty")
	delete(next.kids, "pool")
	delete(next.at("tools").kids, "run.sh")
	newRoot := g.build(next)
	src := &Store{BS: g.bs}
	dest := filepath.Join(t.TempDir(), "dest")
	mustPull(t, src, oldRoot, dest)

	mustWrite(t, filepath.Join(dest, "added"), "by hand")
	mustWrite(t, filepath.Join(dest, "pool/main/h/mine"), "by hand, in a directory the root drops")
	mustWrite(t, filepath.Join(dest, "empty"), "edited by hand")
	mustWrite(t, filepath.Join(dest, "cran/local.tar.gz"), "by hand, in a HAMT directory")
	res := mustPull(t, src, newRoot, dest)
	for _, gone := range []string{"README", "tools/run.sh", "pool/main/h/hello", "pool/contrib"} {
		if exists(filepath.Join(dest, gone)) {
			t.Errorf("%s: written by pull, dropped by ROOT, still there", gone)
		}
	}
	kept := []string{"added", "cran/local.tar.gz", "empty", "pool/main/h/mine"}
	for _, k := range kept {
		if !exists(filepath.Join(dest, k)) {
			t.Errorf("%s: not written by pull (or changed since), removed", k)
		}
	}
	slices.Sort(res.KeptPaths)
	if res.Kept != 4 || !slices.Equal(res.KeptPaths, kept) {
		t.Errorf("kept %d %v, want %v", res.Kept, res.KeptPaths, kept)
	}
	// Reported on every run while they are there.
	if res := mustPull(t, src, newRoot, dest); res.Kept != 4 {
		t.Errorf("the next pull reports %d kept %v, want 4", res.Kept, res.KeptPaths)
	}
	res = mustPull(t, src, newRoot, dest, func(o *Options) { o.Delete = DeleteAll })
	checkTree(t, dest, next)
	if res.Kept != 0 || res.Deleted != 4 {
		t.Errorf("--delete: kept %d, deleted %d, want 0 and 4", res.Kept, res.Deleted)
	}
}

// TestDestAndRepoApart: a DEST that is the repository, lies inside it or
// contains it is refused before anything is written.
func TestDestAndRepoApart(t *testing.T) {
	g := newDAGStore(t)
	root := g.build(sample())
	src := &Store{BS: g.bs}
	parent := t.TempDir()
	repo := filepath.Join(parent, "repo")
	mustWrite(t, filepath.Join(repo, "packs/p1"), "blocks")
	for _, dest := range []string{repo, filepath.Join(repo, "packs"), filepath.Join(repo, "new/dest"), parent} {
		before := snapshot(t, parent, "")
		for _, mode := range []Deletion{DeleteWritten, DeleteAll} {
			_, err := pullInto(t, src, root, dest, func(o *Options) { o.Repo = repo; o.Delete = mode })
			if err == nil || !strings.Contains(err.Error(), "repository") {
				t.Errorf("pull into %s: %v, want a refusal", dest, err)
			}
		}
		if after := snapshot(t, parent, ""); after != before {
			t.Errorf("pull into %s changed:\n%s\n%s", dest, before, after)
		}
	}
	// Through a symlink too.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(repo, link); err != nil {
		t.Fatal(err)
	}
	if _, err := pullInto(t, src, root, link, func(o *Options) { o.Repo = repo; o.Delete = DeleteAll }); err == nil {
		t.Errorf("pull into a symlink to the repository went ahead")
	}
}
