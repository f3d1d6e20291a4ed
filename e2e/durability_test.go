//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDurabilityOrder runs sync, gc, pull and fsck --repair under strace
// and checks the order of what they make durable, as the kernel saw it: a
// SIGKILL keeps the page cache, so no crash test would notice a name
// published before the data it names was on the disk; only a power loss
// would. With the fast paths (O_DIRECT, AIO, syncfs) and without
// (IPFS_SYNC_NO_FASTPATH: pwrite and fsync each).
//
//   - sync: every pack's and index's writes made durable (fsync of the
//     file, or a syncfs, after its last write completed, AIO completions
//     included) before the index naming it is renamed into place; the
//     renames made durable (directory fsync or syncfs) and all of it
//     before the ref's rename; the ref's file fsynced before its rename,
//     and the rename followed by its directory's fsync.
//   - gc: the versions it retires marked in their refs, durably, and the
//     new packs and index durable and named before any old index or pack
//     is removed; old indexes removed, durably, before their packs.
//   - pull: every file written in DEST, and every rename there, durable
//     before the state recording the root is renamed into place.
//   - fsck --repair: the damage mark renamed into place and its directory
//     fsynced before the first index without the corrupt block is named.
func TestDurabilityOrder(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("not checked: strace is missing (make e2e-deps installs it)")
	}
	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprint("fast=", fast), func(t *testing.T) {
			var env []string
			if !fast {
				env = []string{"IPFS_SYNC_NO_FASTPATH=1"}
			}
			dir := t.TempDir()
			src, repo, dest := filepath.Join(dir, "src"), filepath.Join(dir, "repo"), filepath.Join(dir, "dest")
			writeDurTree(t, src, "first")
			traced := func(args ...string) *durTrace {
				t.Helper()
				return traceDurable(t, strace, env, append([]string{"--repo", repo}, args...)...)
			}

			tr := traced("-q", "sync", src)
			checkSyncOrder(t, "first sync", tr, repo)
			writeDurTree(t, src, "second") // the big file rewritten, files added
			tr = traced("-q", "sync", src)
			checkSyncOrder(t, "second sync", tr, repo)
			root := strings.TrimSpace(tr.res.Stdout)

			tr = traced("gc", "--keep", "1")
			checkGCOrder(t, tr, repo)

			tr = traced("-q", "pull", root, dest)
			checkPullOrder(t, tr, repo, dest)

			corruptInPacks(t, repo, []byte("small file 3 of second"))
			tr = traced("fsck", "--repair")
			if tr.res.Code != 1 {
				t.Fatalf("fsck --repair of a corrupt block: %s", tr.res)
			}
			checkRepairOrder(t, tr, repo)
		})
	}
}

// writeDurTree writes a tree of 9 MiB of random bytes (stages of 4 MiB:
// full ones go through AIO where it is on, the rest with pwrite) and small
// files named after tag.
func writeDurTree(t *testing.T, src, tag string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(src, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 9<<20)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(src, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		p := filepath.Join(src, "a", fmt.Sprintf("%s-%d", tag, i))
		if err := os.WriteFile(p, []byte(fmt.Sprintf("small file %d of %s", i, tag)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// corruptInPacks flips a byte of the one stored block holding data.
func corruptInPacks(t *testing.T, repo string, data []byte) {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(repo, "packs", "*.pack"))
	for _, p := range packs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, data); i >= 0 {
			b[i] ^= 0xff
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("%q is in no pack", data)
}

// durTrace is what one traced run did to files, in the order strace saw
// it. Positions are line numbers of the log: a call starts at the line
// that shows its entry and ends at the one that shows its return, and
// strace sees a call's return before the thread that made it goes on, so
// a call that follows another in the program follows it in the log.
type durTrace struct {
	res     result
	writes  map[string][]durSpan // by path: writes, truncations, allocations
	syncs   []durSync
	renames []durRename
	unlinks []durPath
}

type durSpan struct{ start, end int }

// durSync is an fsync or fdatasync of path, or a syncfs (path "").
type durSync struct {
	durSpan
	path string
}

type durRename struct {
	durSpan
	from, to string
}

type durPath struct {
	durSpan
	path string
}

// never is the end of an AIO write no io_getevents reported.
const never = math.MaxInt

var (
	durFD     = regexp.MustCompile(`^(?:AT_FDCWD|\d+)<([^>]*)>`)
	durAtName = regexp.MustCompile(`(?:AT_FDCWD|\d+)<([^>]*)>, "([^"]*)"`)
	durQuoted = regexp.MustCompile(`"([^"]*)"`)
	durIOCB   = regexp.MustCompile(`aio_data=(\w+), aio_lio_opcode=IOCB_CMD_PWRITEV?, aio_fildes=\d+<([^>]*)>`)
	durEvent  = regexp.MustCompile(`\{data=(\w+), obj=`)
	// The return value, which strace pads to a column: the last ") = ".
	durReturn = regexp.MustCompile(`^(.*)\)\s+= (.*)$`)
)

// traceDurable runs ipfs-sync with args under strace and parses the calls
// that change files or make them durable.
func traceDurable(t *testing.T, strace string, env []string, args ...string) *durTrace {
	t.Helper()
	log := filepath.Join(t.TempDir(), "strace")
	calls := "fsync,fdatasync,syncfs,rename,renameat,renameat2,unlink,unlinkat,write,writev,pwrite64,pwritev,pwritev2,ftruncate,fallocate,copy_file_range,io_submit,io_getevents"
	res := run(t, env, strace, append([]string{"-f", "-y", "-qq", "--seccomp-bpf", "-e", "trace=" + calls, "-o", log, syncBin}, args...)...)
	data, err := os.ReadFile(log)
	if err != nil || len(data) == 0 {
		t.Skipf("not checked: strace could not trace here (%v): %s", err, res.Stderr)
	}
	if res.Code != 0 && !(len(args) > 2 && args[2] == "fsck") {
		t.Fatalf("ipfs-sync %s: %s", strings.Join(args, " "), res)
	}
	tr := &durTrace{res: res, writes: map[string][]durSpan{}}
	type pending struct {
		start int
		text  string
	}
	open := map[string]pending{}
	type aioKey struct{ ctx, tag string }
	submitted := map[aioKey]struct {
		path  string
		start int
	}{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 0; sc.Scan(); n++ {
		pid, text, _ := strings.Cut(sc.Text(), " ")
		text = strings.TrimLeft(text, " ")
		start := n
		switch {
		case strings.HasPrefix(text, "---"), strings.HasPrefix(text, "+++"):
			continue
		case strings.HasSuffix(text, " <unfinished ...>"):
			open[pid] = pending{n, strings.TrimSuffix(text, " <unfinished ...>")}
			continue
		case strings.HasPrefix(text, "<... "):
			p, ok := open[pid]
			if !ok {
				continue
			}
			delete(open, pid)
			_, rest, _ := strings.Cut(text, " resumed>")
			start, text = p.start, p.text+rest
		}
		name, rest, ok := strings.Cut(text, "(")
		m := durReturn.FindStringSubmatch(rest)
		if !ok || m == nil {
			continue
		}
		args, ret := m[1], m[2]
		if strings.HasPrefix(ret, "-1") || strings.HasPrefix(ret, "?") {
			continue // failed: changed nothing
		}
		span := durSpan{start, n}
		fd := ""
		if m := durFD.FindStringSubmatch(args); m != nil {
			fd = m[1]
		}
		switch name {
		case "write", "writev", "pwrite64", "pwritev", "pwritev2", "ftruncate", "fallocate":
			tr.writes[fd] = append(tr.writes[fd], span)
		case "copy_file_range":
			if m := regexp.MustCompile(`, \d+<([^>]*)>, `).FindStringSubmatch(args); m != nil {
				tr.writes[m[1]] = append(tr.writes[m[1]], span)
			}
		case "fsync", "fdatasync":
			tr.syncs = append(tr.syncs, durSync{span, fd})
		case "syncfs":
			tr.syncs = append(tr.syncs, durSync{span, ""})
		case "rename", "renameat", "renameat2":
			var paths []string
			if name == "rename" {
				for _, m := range durQuoted.FindAllStringSubmatch(args, 2) {
					paths = append(paths, m[1])
				}
			} else {
				for _, m := range durAtName.FindAllStringSubmatch(args, 2) {
					paths = append(paths, durJoin(m[1], m[2]))
				}
			}
			if len(paths) == 2 {
				tr.renames = append(tr.renames, durRename{span, paths[0], paths[1]})
			}
		case "unlink":
			if m := durQuoted.FindStringSubmatch(args); m != nil {
				tr.unlinks = append(tr.unlinks, durPath{span, m[1]})
			}
		case "unlinkat":
			if m := durAtName.FindStringSubmatch(args); m != nil && !strings.Contains(args, "AT_REMOVEDIR") {
				tr.unlinks = append(tr.unlinks, durPath{span, durJoin(m[1], m[2])})
			}
		case "io_submit":
			ctx, _, _ := strings.Cut(args, ",")
			for _, m := range durIOCB.FindAllStringSubmatch(args, -1) {
				submitted[aioKey{ctx, durTag(m[1])}] = struct {
					path  string
					start int
				}{m[2], start}
			}
		case "io_getevents":
			ctx, _, _ := strings.Cut(args, ",")
			for _, m := range durEvent.FindAllStringSubmatch(args, -1) {
				k := aioKey{ctx, durTag(m[1])}
				if s, ok := submitted[k]; ok {
					tr.writes[s.path] = append(tr.writes[s.path], durSpan{s.start, n})
					delete(submitted, k)
				}
			}
		}
	}
	for _, s := range submitted { // never reaped: never known complete
		tr.writes[s.path] = append(tr.writes[s.path], durSpan{s.start, never})
	}
	return tr
}

func durJoin(dir, name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(dir, name)
}

func durTag(s string) string {
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		return s
	}
	return strconv.FormatUint(v, 10)
}

// durable reports whether what was written to path before position at
// had been made durable by then: an fsync of it or a syncfs that started
// after the last of those writes ended, and ended before at.
func (tr *durTrace) durable(path string, at int) bool {
	last := -1
	for _, w := range tr.writes[path] {
		if w.start < at {
			last = max(last, w.end)
		}
	}
	if last < 0 {
		return true
	}
	for _, s := range tr.syncs {
		if (s.path == "" || s.path == path) && s.start > last && s.end < at {
			return true
		}
	}
	return false
}

// entryDurable reports whether a change of directory entries in dir that
// ended at pos was made durable (an fsync of dir or a syncfs) before at.
func (tr *durTrace) entryDurable(dir string, pos, at int) bool {
	for _, s := range tr.syncs {
		if (s.path == "" || s.path == dir) && s.start > pos && s.end < at {
			return true
		}
	}
	return false
}

// written is every file under dir with suffix that was written to.
func (tr *durTrace) written(dir, suffix string) []string {
	var out []string
	for p := range tr.writes {
		if strings.HasPrefix(p, dir+"/") && strings.HasSuffix(p, suffix) {
			out = append(out, p)
		}
	}
	return out
}

// renamesTo is the renames whose target is under dir with suffix.
func (tr *durTrace) renamesTo(dir, suffix string) []durRename {
	var out []durRename
	for _, r := range tr.renames {
		if filepath.Dir(r.to) == dir && strings.HasSuffix(r.to, suffix) {
			out = append(out, r)
		}
	}
	return out
}

// checkPacksNamed checks every index renamed into place in the packs
// directory: its own writes durable before, and those of the packs it
// names, and the rename itself durable before at.
func checkPacksNamed(t *testing.T, what string, tr *durTrace, packs string, at int) []durRename {
	t.Helper()
	named := tr.renamesTo(packs, ".idx")
	for _, r := range named {
		if !tr.durable(r.from, r.start) {
			t.Errorf("%s: index %s renamed into place before its data was durable", what, filepath.Base(r.to))
		}
		// A run's own index names its pack; a merged one (.idx.tmp)
		// every pack, of which those written by this run are new.
		mine := []string{strings.TrimSuffix(r.from, ".idx.new") + ".pack"}
		if strings.HasSuffix(r.from, ".tmp") {
			mine = tr.written(packs, ".pack")
		}
		for _, p := range mine {
			if !tr.durable(p, r.start) {
				t.Errorf("%s: index %s renamed into place before pack %s was durable", what, filepath.Base(r.to), filepath.Base(p))
			}
		}
		if r.end > at || !tr.entryDurable(packs, r.end, at) {
			t.Errorf("%s: the rename of index %s was not durable in time", what, filepath.Base(r.to))
		}
	}
	return named
}

// checkRefWrite checks a ref (or other small file) written by renaming a
// temporary file over it: the temporary fsynced first, the directory
// fsynced after.
func checkRefWrite(t *testing.T, what string, tr *durTrace, r durRename) {
	t.Helper()
	if !tr.durable(r.from, r.start) {
		t.Errorf("%s: %s renamed into place before its data was durable", what, r.to)
	}
	if !tr.entryDurable(filepath.Dir(r.to), r.end, never) {
		t.Errorf("%s: the rename of %s is not followed by an fsync of its directory", what, r.to)
	}
}

func checkSyncOrder(t *testing.T, what string, tr *durTrace, repo string) {
	t.Helper()
	packs := filepath.Join(repo, "packs")
	refs := tr.renamesTo(filepath.Join(repo, "refs"), ".json")
	if len(refs) != 1 {
		t.Fatalf("%s: %d ref writes, want 1", what, len(refs))
	}
	ref := refs[0]
	written := tr.written(packs, ".pack")
	named := checkPacksNamed(t, what, tr, packs, ref.start)
	if len(written) == 0 || len(named) == 0 {
		t.Fatalf("%s wrote %d packs and named %d indexes: nothing to check", what, len(written), len(named))
	}
	for _, p := range written {
		if !tr.durable(p, ref.start) {
			t.Errorf("%s: the ref moved before pack %s was durable", what, filepath.Base(p))
		}
	}
	checkRefWrite(t, what, tr, ref)
}

func checkGCOrder(t *testing.T, tr *durTrace, repo string) {
	t.Helper()
	packs := filepath.Join(repo, "packs")
	var first = never
	var oldIdx, oldPacks []durPath
	for _, u := range tr.unlinks {
		if filepath.Dir(u.path) != packs {
			continue
		}
		first = min(first, u.start)
		switch filepath.Ext(u.path) {
		case ".idx":
			oldIdx = append(oldIdx, u)
		case ".pack":
			oldPacks = append(oldPacks, u)
		}
	}
	refs := tr.renamesTo(filepath.Join(repo, "refs"), ".json")
	if len(oldPacks) == 0 || len(refs) == 0 {
		t.Fatalf("gc removed %d packs and marked %d refs: nothing to check", len(oldPacks), len(refs))
	}
	for _, r := range refs {
		if r.end > first || !tr.entryDurable(filepath.Dir(r.to), r.end, first) {
			t.Errorf("gc: ref %s marked collected after (or not durably before) the first removal", filepath.Base(r.to))
		}
		checkRefWrite(t, "gc", tr, r)
	}
	for _, p := range tr.written(packs, ".pack") {
		if !tr.durable(p, first) {
			t.Errorf("gc: a removal before new pack %s was durable", filepath.Base(p))
		}
	}
	if named := checkPacksNamed(t, "gc", tr, packs, first); len(named) == 0 {
		t.Error("gc named no new index before removing")
	}
	for _, p := range oldPacks {
		for _, x := range oldIdx {
			if x.end > p.start || !tr.entryDurable(packs, x.end, p.start) {
				t.Errorf("gc: pack %s removed before index %s was removed durably", filepath.Base(p.path), filepath.Base(x.path))
			}
		}
	}
}

func checkPullOrder(t *testing.T, tr *durTrace, repo, dest string) {
	t.Helper()
	var record *durRename
	for _, r := range tr.renames {
		if strings.HasPrefix(r.to, filepath.Join(repo, "pulls")+"/") && filepath.Base(r.to) == "state.json" {
			record = &r
		}
	}
	if record == nil {
		t.Fatal("pull: no state.json written")
	}
	files := 0
	for p := range tr.writes {
		switch {
		case strings.HasPrefix(p, dest+"/"):
			files++
		case strings.HasPrefix(p, filepath.Dir(record.to)+"/") && !strings.HasPrefix(filepath.Base(p), ".ipfs-sync-pull-tmp-"):
			// the state's logs
		default:
			continue
		}
		if !tr.durable(p, record.start) {
			t.Errorf("pull: the root was recorded before %s was durable", p)
		}
	}
	if files == 0 {
		t.Fatal("pull wrote no file in DEST: nothing to check")
	}
	for _, r := range tr.renames {
		if strings.HasPrefix(r.to, dest+"/") && (r.end > record.start || !tr.entryDurable(filepath.Dir(r.to), r.end, record.start)) {
			t.Errorf("pull: the root was recorded before the rename of %s was durable", r.to)
		}
	}
	checkRefWrite(t, "pull", tr, *record)
}

func checkRepairOrder(t *testing.T, tr *durTrace, repo string) {
	t.Helper()
	packs := filepath.Join(repo, "packs")
	marks := tr.renamesTo(repo, "damaged")
	if len(marks) == 0 {
		t.Fatal("fsck --repair: no damage mark written")
	}
	mark := marks[0]
	first := never
	for _, r := range tr.renamesTo(packs, ".idx") {
		first = min(first, r.start)
	}
	for _, u := range tr.unlinks {
		if filepath.Dir(u.path) == packs {
			first = min(first, u.start)
		}
	}
	if first == never {
		t.Fatal("fsck --repair changed no index: nothing to check")
	}
	if !tr.durable(mark.from, mark.start) || mark.end > first || !tr.entryDurable(repo, mark.end, first) {
		t.Error("fsck --repair: the damage mark was not durable before the first removal")
	}
}
