package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadEnvironmentEveryCommand: an IPFS_SYNC_* variable that does not
// parse for its flag is a usage error (exit 2, naming it) for every
// command, whether or not the command has that flag; a variable that is
// no flag's (IPFS_SYNC_BIN, say) is none of ipfs-sync's business.
func TestBadEnvironmentEveryCommand(t *testing.T) {
	src := tree(t)
	repo := t.TempDir()
	clearEnv(t)
	if res := runCLI(t, "--repo", repo, "-q", "sync", src); res.code != 0 {
		t.Fatalf("sync: exit %d\n%s", res.code, res.stderr)
	}
	for _, bad := range []struct{ name, value string }{
		{"IPFS_SYNC_HIDDEN", "maybe"},
		{"IPFS_SYNC_WORKERS", "many"},
		{"IPFS_SYNC_KEEP", "some"},
		{"IPFS_SYNC_RETRY_LOCK", "soon"},
		{"IPFS_SYNC_STALL_TIMEOUT", "10"},
	} {
		for _, args := range [][]string{{"refs"}, {"log", src}, {"fsck"}, {"gc"}, {"sync", src}, {"diff", "a", "b"}} {
			t.Run(bad.name+"/"+args[0], func(t *testing.T) {
				clearEnv(t)
				t.Setenv(bad.name, bad.value)
				res := runCLI(t, append([]string{"--repo", repo}, args...)...)
				if res.code != ExitUsage || !strings.Contains(res.stderr, bad.name) {
					t.Errorf("%s=%s ipfs-sync %s: exit %d, want %d naming %s\nstderr: %s", bad.name, bad.value, strings.Join(args, " "), res.code, ExitUsage, bad.name, res.stderr)
				}
			})
		}
	}
	clearEnv(t)
	t.Setenv("IPFS_SYNC_BIN", "/no/such/binary")
	if res := runCLI(t, "--repo", repo, "refs"); res.code != 0 {
		t.Errorf("IPFS_SYNC_BIN (no flag's) ipfs-sync refs: exit %d\n%s", res.code, res.stderr)
	}
}

// TestMistypedCommand: a word that is no command, followed by more
// arguments, is a mistyped command (exit 2, naming it and the closest
// command), not a sync of two sources; `ipfs-sync SRC` is still sync.
func TestMistypedCommand(t *testing.T) {
	clearEnv(t)
	src := tree(t)
	repo := filepath.Join(t.TempDir(), "repo")
	for _, args := range [][]string{{"synk", src}, {"--json", "synk", src}, {"exprot", "bafy", "--car", "x.car"}, {"gc", "--kep", "1"}} {
		res := runCLI(t, append([]string{"--repo", repo}, args...)...)
		if res.code != ExitUsage || strings.Contains(res.stderr, "needs exactly one SRC") {
			t.Errorf("ipfs-sync %s: exit %d, want %d\nstderr: %s", strings.Join(args, " "), res.code, ExitUsage, res.stderr)
		}
	}
	res := runCLI(t, "--repo", repo, "synk", src)
	if !strings.Contains(res.stderr, `"synk"`) || !strings.Contains(res.stderr, `"sync"`) {
		t.Errorf("ipfs-sync synk SRC: %q does not name the word and the command meant", res.stderr)
	}
	if _, err := os.Stat(repo); err == nil {
		t.Errorf("a mistyped command created %s", repo)
	}
	for _, args := range [][]string{{"-q", src}, {src, "--exclude", "*.txt"}, {"--json", src, "--hidden=false"}} {
		if res := runCLI(t, append([]string{"--repo", repo}, args...)...); res.code != 0 {
			t.Errorf("ipfs-sync %s: exit %d\nstderr: %s", strings.Join(args, " "), res.code, res.stderr)
		}
	}
}
