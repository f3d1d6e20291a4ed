package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestNoCopyFlag: --nocopy from the command line (alone or with a
// value), the environment and config.json, --copy, and the usage errors;
// what the run stored is told by the size of the packs (a 300 KB file,
// copied or referenced).
func TestNoCopyFlag(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		env    string // IPFS_SYNC_NOCOPY
		config string // the repository's config.json
		code   int
		copied bool
	}{
		{name: "default", copied: true},
		{name: "flag", args: []string{"--nocopy"}},
		{name: "flag=true", args: []string{"--nocopy=true"}},
		{name: "flag=false", args: []string{"--nocopy=false"}, copied: true},
		{name: "environment", env: "true"},
		{name: "config", config: `{"sync": {"nocopy": true}}`},
		{name: "config, flag wins", config: `{"nocopy": true}`, args: []string{"--nocopy=false"}, copied: true},
		{name: "--copy matches", args: []string{"--nocopy", "--copy", "*.bin"}, copied: true},
		{name: "--copy elsewhere", args: []string{"--nocopy", "--copy", "dists/**"}},
		{name: "--copy without --nocopy", args: []string{"--copy", "*.bin"}, code: 2},
		{name: "trickle", args: []string{"--nocopy", "--trickle"}, code: 2},
		{name: "rabin", args: []string{"--nocopy", "--chunker", "rabin-1024-2048-4096"}, code: 2},
		{name: "bad value", args: []string{"--nocopy=maybe"}, code: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			if tc.env != "" {
				t.Setenv("IPFS_SYNC_NOCOPY", tc.env)
			}
			src := filepath.Join(t.TempDir(), "src")
			if err := os.MkdirAll(src, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, "big.bin"), bytes.Repeat([]byte("0123456789"), 30_000), 0o644); err != nil {
				t.Fatal(err)
			}
			repo := filepath.Join(t.TempDir(), "repo")
			if tc.config != "" {
				if err := os.MkdirAll(repo, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(repo, "config.json"), []byte(tc.config), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			res := runCLI(t, append(append([]string{"--repo", repo, "-q", "sync"}, tc.args...), src)...)
			if res.code != tc.code {
				t.Fatalf("exit %d, want %d: %s", res.code, tc.code, res.stderr)
			}
			if tc.code != 0 {
				return
			}
			packs, err := filepath.Glob(filepath.Join(repo, "packs", "*.pack"))
			if err != nil {
				t.Fatal(err)
			}
			var size int64
			for _, p := range packs {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				size += fi.Size()
			}
			if copied := size > 300_000; copied != tc.copied {
				t.Errorf("packs hold %d bytes: copied %v, want %v", size, copied, tc.copied)
			}
		})
	}
}
