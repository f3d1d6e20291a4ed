package sync

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/diff"
	"github.com/ipfs-sync/ipfs-sync/internal/testtier"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

var soak = flag.Bool("soak", false, "run the randomised incremental-vs-full property test for 5000 steps per profile")

// propProfiles exercise every path of the incremental engine with tiny
// chunks, narrow file DAGs and a low HAMT threshold, so a small tree has
// multi-level files and directories that shard and unshard.
func propProfiles(t *testing.T) map[string]profile.Profile {
	mk := func(name string, o profile.Overrides) profile.Profile {
		small, width, hamt := "size-64", 3, 600
		o.Chunker, o.MaxFileLinks, o.HAMTThreshold = &small, &width, &hamt
		p, err := profile.New(name, o)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	none, mtime, mode := "none", "mtime", "mode"
	links := "links"
	return map[string]profile.Profile{
		"v1-meta":       mk(profile.V1_2025, profile.Overrides{}),
		"v1-none":       mk(profile.V1_2025, profile.Overrides{Metadata: &none}),
		"v1-mtime":      mk(profile.V1_2025, profile.Overrides{Metadata: &mtime}),
		"v1-mode-links": mk(profile.V1_2025, profile.Overrides{Metadata: &mode, HAMTEstimation: &links}),
		"v0-meta":       mk(profile.V0_2015, profile.Overrides{}),
	}
}

// TestIncrementalEqualsFull applies random sequences of the mutations a
// mirror sees and checks after every step that the incremental root equals
// a fresh full import of the same tree.
func TestIncrementalEqualsFull(t *testing.T) {
	// 40 steps is about the fewest at which every profile reuses files and
	// directories (runProperty checks that at the end).
	steps := testtier.Size(40, 60, 300)
	if *soak {
		steps = 5000
	}
	for name, p := range propProfiles(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			seed := uint64(len(name))*7919 + 1
			runProperty(t, p, seed, steps)
		})
	}
}

// propertyStores is an empty source directory and two fresh stores, for
// a run that syncs incrementally into inc and afresh into full at each
// step; the stores close when the test ends.
func propertyStores(t *testing.T) (src string, inc, full *blockstore.Store) {
	t.Helper()
	src = filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range []**blockstore.Store{&inc, &full} {
		st, err := blockstore.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		*s = st
	}
	return src, inc, full
}

func runProperty(t *testing.T, p profile.Profile, seed uint64, steps int) {
	ctx := context.Background()
	src, inc, full := propertyStores(t)
	m := &mutator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), root: src, t: t}
	for range 8 {
		m.addFile()
	}
	var log []string
	var reused, rerooted, dirsReused int64
	for step := 0; step < steps; step++ {
		op := m.step()
		log = append(log, op)
		opts := Options{Src: src, Profile: p, Filter: diff.Filter{Hidden: true}, Workers: 2, Checksum: m.needChecksum}
		m.needChecksum = false
		got, err := Run(ctx, inc, opts)
		if err != nil {
			t.Fatalf("step %d (%s): incremental: %v", step, op, err)
		}
		reused += got.FileChanges.Unchanged
		rerooted += got.FileChanges.Metadata
		dirsReused += got.DirChanges.Unchanged
		opts.Full, opts.Checksum = true, false
		want, err := Run(ctx, full, opts)
		if err != nil {
			t.Fatalf("step %d (%s): full: %v", step, op, err)
		}
		if got.Root != want.Root {
			tail := log
			if len(tail) > 10 {
				tail = tail[len(tail)-10:]
			}
			t.Fatalf("step %d: incremental root %s != full import %s\nlast operations:\n  %s", step, got.Root, want.Root, strings.Join(tail, "\n  "))
		}
	}
	// The property is only worth something if the incremental paths ran.
	if reused == 0 || dirsReused == 0 || (p.PreserveMode && rerooted == 0) {
		t.Errorf("incremental paths not exercised: %d files reused, %d rerooted, %d dirs reused", reused, rerooted, dirsReused)
	}
}

// mutator changes a tree the way publishes do. Most mtimes it sets are in
// the past, so the quick check (not the racy-clean re-read) decides.
type mutator struct {
	rng          *rand.Rand
	root         string
	t            *testing.T
	n            int
	needChecksum bool  // a same-size, same-mtime rewrite only --checksum can see
	sizes        []int // of the files it writes; data's when nil
}

func (m *mutator) oldTime() time.Time {
	return time.Unix(1_500_000_000+m.rng.Int64N(100_000_000), m.rng.Int64N(3)*499_999_999)
}

func (m *mutator) data() []byte {
	sizes := []int{0, 1, 63, 64, 65, 191, 192, 193, 700}
	if m.sizes != nil {
		sizes = m.sizes
	}
	b := make([]byte, sizes[m.rng.IntN(len(sizes))])
	for i := range b {
		b[i] = byte(m.rng.IntN(4)) // low entropy: equal chunks dedupe
	}
	return b
}

func (m *mutator) name() string {
	m.n++
	return fmt.Sprintf("n%03d-%s", m.n, strings.Repeat("x", m.rng.IntN(20)))
}

// entries lists every path under the root, relative, sorted.
func (m *mutator) entries(want func(fs.FileMode) bool) []string {
	var out []string
	filepath.WalkDir(m.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == m.root {
			return nil
		}
		if want(d.Type()) {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func (m *mutator) pick(want func(fs.FileMode) bool) string {
	es := m.entries(want)
	if len(es) == 0 {
		return ""
	}
	return es[m.rng.IntN(len(es))]
}

func isFile(t fs.FileMode) bool    { return t.IsRegular() }
func isDir(t fs.FileMode) bool     { return t.IsDir() }
func isSymlink(t fs.FileMode) bool { return t&fs.ModeSymlink != 0 }
func isAny(fs.FileMode) bool       { return true }

func (m *mutator) dir() string {
	if d := m.pick(isDir); d != "" && m.rng.IntN(3) > 0 {
		return d
	}
	return m.root
}

func (m *mutator) must(err error) {
	if err != nil {
		m.t.Helper()
		m.t.Fatal(err)
	}
}

func (m *mutator) write(p string, b []byte, keepMTime bool) {
	var old time.Time
	if fi, err := os.Lstat(p); err == nil {
		old = fi.ModTime()
	}
	m.must(os.WriteFile(p, b, 0o644))
	switch {
	case keepMTime && !old.IsZero():
		m.must(os.Chtimes(p, old, old))
	case m.rng.IntN(4) > 0:
		t := m.oldTime()
		m.must(os.Chtimes(p, t, t))
	}
}

func (m *mutator) addFile() string {
	p := filepath.Join(m.dir(), m.name())
	m.write(p, m.data(), false)
	return "add " + p
}

// step applies one random mutation and describes it.
func (m *mutator) step() string {
	switch m.rng.IntN(16) {
	case 0, 1:
		return m.addFile()
	case 2:
		if p := m.pick(isAny); p != "" {
			m.must(os.RemoveAll(p))
			return "remove " + p
		}
	case 3:
		if p := m.pick(isAny); p != "" {
			q := filepath.Join(m.dir(), m.name())
			if !strings.HasPrefix(q, p+"/") {
				m.must(os.Rename(p, q))
				return "rename " + p + " " + q
			}
		}
	case 4:
		if p := m.pick(isFile); p != "" {
			m.write(p, m.data(), false)
			return "rewrite " + p
		}
	case 5:
		if p := m.pick(isFile); p != "" {
			old, err := os.ReadFile(p)
			m.must(err)
			b := m.data()
			if len(b) != len(old) {
				b = append(b[:0:0], old...)
				for i := range b {
					b[i] ^= 0x55
				}
			}
			m.write(p, b, true)
			m.needChecksum = true
			return "rewrite-same-size-same-mtime " + p
		}
	case 6:
		if p := m.pick(isFile); p != "" {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			m.must(err)
			_, err = f.Write(m.data())
			m.must(err)
			m.must(f.Close())
			return "append " + p
		}
	case 7:
		if p := m.pick(isFile); p != "" {
			fi, err := os.Stat(p)
			m.must(err)
			m.must(os.Truncate(p, fi.Size()/2))
			return "truncate " + p
		}
	case 8:
		if p := m.pick(func(t fs.FileMode) bool { return t.IsRegular() || t.IsDir() }); p != "" {
			modes := []uint32{0o644, 0o600, 0o755, 0o4755, 0o2750, 0o1777, 0o444, 0o000}
			mode := modes[m.rng.IntN(len(modes))]
			if fi, _ := os.Lstat(p); fi.IsDir() {
				mode |= 0o700 // keep it walkable
			} else if os.Geteuid() != 0 {
				mode |= 0o400 // without root, a file its owner cannot read cannot be imported
			}
			m.must(syscall.Chmod(p, mode))
			return fmt.Sprintf("chmod %o %s", mode, p)
		}
	case 9:
		if p := m.pick(func(t fs.FileMode) bool { return t.IsRegular() || t.IsDir() }); p != "" {
			t := m.oldTime()
			m.must(os.Chtimes(p, t, t))
			return "touch " + p
		}
	case 10:
		if p := m.pick(isFile); p != "" {
			m.must(os.Remove(p))
			m.must(os.Mkdir(p, 0o755))
			m.write(filepath.Join(p, "inner"), m.data(), false)
			return "file->dir " + p
		}
		if p := m.pick(isDir); p != "" {
			m.must(os.RemoveAll(p))
			m.write(p, m.data(), false)
			return "dir->file " + p
		}
	case 11:
		targets := []string{"../x", "/etc/passwd", ".", "dangling", "n001"}
		tgt := targets[m.rng.IntN(len(targets))]
		if p := m.pick(isSymlink); p != "" && m.rng.IntN(2) == 0 {
			m.must(os.Remove(p))
			m.must(os.Symlink(tgt, p))
			return "retarget " + p + " -> " + tgt
		}
		p := filepath.Join(m.dir(), m.name())
		m.must(os.Symlink(tgt, p))
		return "symlink " + p + " -> " + tgt
	case 12:
		d := m.dir()
		for range 12 + m.rng.IntN(12) {
			m.write(filepath.Join(d, m.name()), m.data(), false)
		}
		return "grow " + d
	case 13:
		d := m.dir()
		ents, _ := os.ReadDir(d)
		for i, e := range ents {
			if i%2 == 0 {
				m.must(os.RemoveAll(filepath.Join(d, e.Name())))
			}
		}
		return "shrink " + d
	case 14:
		p := filepath.Join(m.dir(), m.name())
		m.must(os.Mkdir(p, 0o755))
		if m.rng.IntN(2) == 0 {
			t := m.oldTime()
			m.must(os.Chtimes(p, t, t))
		}
		return "mkdir " + p
	case 15:
		if p := m.pick(isDir); p != "" {
			m.must(os.RemoveAll(p))
			return "remove-subtree " + p
		}
	}
	return m.addFile()
}
