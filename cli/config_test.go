package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"
)

// clearEnv removes every IPFS_SYNC_* variable for the test, so that the
// caller's environment cannot change what it sees.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "IPFS_SYNC_") {
			t.Setenv(k, "") // restored after the test
			os.Unsetenv(k)
		}
	}
}

// tree makes a small source tree with a dotfile.
func tree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	for name, data := range map[string]string{"a.txt": "alpha", "sub/b.txt": "beta", ".hidden": "dot"} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

type runResult struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, args ...string) runResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), append([]string{"ipfs-sync"}, args...), &stdout, &stderr)
	return runResult{code, stdout.String(), stderr.String()}
}

// TestConfigPrecedence: flags > IPFS_SYNC_* environment > the repository's
// config.json > defaults, for a command's flags and for global ones.
func TestConfigPrecedence(t *testing.T) {
	src := tree(t)
	abs, err := filepath.Abs(src)
	if err != nil {
		t.Fatal(err)
	}
	// What each run is checked for: the ref name, whether the output was
	// JSON, and the number of files (3 with dotfiles, 2 without).
	type want struct {
		name  string
		json  bool
		files int
	}
	tests := []struct {
		name   string
		config string // config.json; "" for none
		env    map[string]string
		args   []string // between "sync" and SRC
		global []string // before "sync"
		want   want
	}{
		{name: "defaults", global: []string{"--json"}, want: want{abs, true, 3}},
		{name: "config", config: `{"name": "from-config", "json": true}`, want: want{"from-config", true, 3}},
		{name: "config section beats config", config: `{"name": "flat", "json": true, "sync": {"name": "section"}}`, want: want{"section", true, 3}},
		{name: "env beats config", config: `{"name": "from-config", "json": true}`, env: map[string]string{"IPFS_SYNC_NAME": "from-env"}, want: want{"from-env", true, 3}},
		{name: "env beats config section", config: `{"json": true, "sync": {"name": "section"}}`, env: map[string]string{"IPFS_SYNC_NAME": "from-env"}, want: want{"from-env", true, 3}},
		{name: "flag beats env and config", config: `{"name": "from-config", "json": true}`, env: map[string]string{"IPFS_SYNC_NAME": "from-env"}, args: []string{"--name", "from-flag"}, want: want{"from-flag", true, 3}},
		{name: "env global", env: map[string]string{"IPFS_SYNC_JSON": "true"}, want: want{abs, true, 3}},
		{name: "env global false beats config", config: `{"json": true}`, env: map[string]string{"IPFS_SYNC_JSON": "false"}, want: want{abs, false, 3}},
		{name: "flag global beats env", env: map[string]string{"IPFS_SYNC_JSON": "true"}, global: []string{"--json=false"}, want: want{abs, false, 3}},
		{name: "global from a command section", config: `{"sync": {"json": true}}`, want: want{abs, true, 3}},
		{name: "bool from config", config: `{"json": true, "hidden": false}`, want: want{abs, true, 2}},
		{name: "bool from env beats config", config: `{"json": true, "hidden": false}`, env: map[string]string{"IPFS_SYNC_HIDDEN": "true"}, want: want{abs, true, 3}},
		{name: "bool flag beats env", global: []string{"--json"}, env: map[string]string{"IPFS_SYNC_HIDDEN": "true"}, args: []string{"--hidden=false"}, want: want{abs, true, 2}},
		{name: "another command's flag is ignored", config: `{"json": true, "keep": 3, "gc": {"keep": 2}}`, want: want{abs, true, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			repo := t.TempDir()
			if tt.config != "" {
				if err := os.WriteFile(filepath.Join(repo, "config.json"), []byte(tt.config), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := append(append(append([]string{"--repo", repo}, tt.global...), "sync"), tt.args...)
			res := runCLI(t, append(args, src)...)
			if res.code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
			}
			var sum struct {
				Name  string `json:"name"`
				Files int    `json:"files"`
			}
			isJSON := json.Unmarshal([]byte(res.stdout), &sum) == nil
			if isJSON != tt.want.json {
				t.Fatalf("JSON output: %v, want %v\nstdout: %s", isJSON, tt.want.json, res.stdout)
			}
			if !isJSON {
				return
			}
			if sum.Name != tt.want.name || sum.Files != tt.want.files {
				t.Errorf("name %q, files %d; want %q, %d", sum.Name, sum.Files, tt.want.name, tt.want.files)
			}
		})
	}
}

// TestConfigAlias: a flag's alias works as a key ("n" for --dry-run).
func TestConfigAlias(t *testing.T) {
	clearEnv(t)
	src := tree(t)
	repo := t.TempDir()
	if err := os.WriteFile(filepath.Join(repo, "config.json"), []byte(`{"n": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	res := runCLI(t, "--repo", repo, "sync", src)
	if res.code != 0 || !strings.Contains(res.stdout, "+ a.txt") {
		t.Fatalf("want a dry run listing + a.txt; exit %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	if res := runCLI(t, "--repo", repo, "refs"); strings.TrimSpace(res.stdout) != "" {
		t.Errorf("a dry run recorded a ref: %s", res.stdout)
	}
}

// TestConfigValues: numbers and strings from the file reach the flags;
// a root made with settings from config.json equals one made with flags.
func TestConfigValues(t *testing.T) {
	clearEnv(t)
	src := tree(t)
	root := func(config string, args ...string) string {
		t.Helper()
		repo := t.TempDir()
		if config != "" {
			if err := os.WriteFile(filepath.Join(repo, "config.json"), []byte(config), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		res := runCLI(t, append(append([]string{"--repo", repo, "-q", "sync"}, args...), src)...)
		if res.code != 0 {
			t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
		}
		return strings.TrimSpace(res.stdout)
	}
	byFlags := root("", "--metadata", "none", "--cid-version", "0", "--chunker", "size-1024")
	if plain := root(""); plain == byFlags {
		t.Fatalf("the settings make no difference (%s); the test proves nothing", plain)
	}
	if got := root(`{"metadata": "none", "cid-version": 0, "chunker": "size-1024"}`); got != byFlags {
		t.Errorf("from config.json: %s, from flags: %s", got, byFlags)
	}
	t.Setenv("IPFS_SYNC_METADATA", "none")
	t.Setenv("IPFS_SYNC_CID_VERSION", "0")
	if got := root(`{"chunker": "size-1024"}`); got != byFlags {
		t.Errorf("from env and config.json: %s, from flags: %s", got, byFlags)
	}
}

// TestConfigErrors: a config file that cannot be applied is a usage error
// (exit 2) naming the file, and nothing runs.
func TestConfigErrors(t *testing.T) {
	clearEnv(t)
	src := tree(t)
	tests := []struct {
		name, config, want string
	}{
		{"not JSON", `{"name": `, "not a JSON object"},
		{"not an object", `["name"]`, "not a JSON object"},
		{"unknown key", `{"nmae": "x"}`, `"nmae" is neither a flag nor a command`},
		{"unknown key in a section", `{"sync": {"keep": 1}}`, `"keep" is not a flag of sync`},
		{"section not an object", `{"sync": true}`, "want an object of sync's flags"},
		{"repo", `{"repo": "/elsewhere"}`, `"repo" cannot be set`},
		{"repo in a section", `{"sync": {"repo": "/elsewhere"}}`, `"repo" cannot be set`},
		{"list for a single value", `{"name": ["a", "b"]}`, "name: takes one value, not a list"},
		{"object value", `{"name": {"a": 1}}`, "name: want a string, number or boolean"},
		{"bad bool", `{"hidden": "maybe"}`, "hidden:"},
		{"bad int", `{"workers": "many"}`, "workers:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := t.TempDir()
			cfg := filepath.Join(repo, "config.json")
			if err := os.WriteFile(cfg, []byte(tt.config), 0o644); err != nil {
				t.Fatal(err)
			}
			res := runCLI(t, "--repo", repo, "sync", src)
			if res.code != ExitUsage {
				t.Fatalf("exit %d, want %d\nstderr: %s", res.code, ExitUsage, res.stderr)
			}
			if !strings.Contains(res.stderr, cfg) || !strings.Contains(res.stderr, tt.want) {
				t.Errorf("stderr %q does not name %s and say %q", res.stderr, cfg, tt.want)
			}
			if res.stdout != "" {
				t.Errorf("stdout: %q", res.stdout)
			}
			if _, err := os.Stat(filepath.Join(repo, "refs")); err == nil {
				t.Errorf("a ref was written")
			}
		})
	}
}

// TestEnvVarsOnEveryFlag: every flag of every command (and every global
// flag) has its IPFS_SYNC_<FLAG> variable, and --help shows it.
func TestEnvVarsOnEveryFlag(t *testing.T) {
	clearEnv(t)
	app := newApp(new(bytes.Buffer), new(bytes.Buffer))
	configure(app)
	check := func(where string, flags []ucli.Flag) {
		for _, f := range flags {
			name := f.Names()[0]
			env, ok := f.(interface{ GetEnvVars() []string })
			if !ok {
				t.Errorf("%s --%s: %T has no environment variables", where, name, f)
				continue
			}
			want := "IPFS_SYNC_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
			if got := env.GetEnvVars(); len(got) != 1 || got[0] != want {
				t.Errorf("%s --%s: environment %v, want [%s]", where, name, got, want)
			}
		}
	}
	check("global", app.Flags)
	for _, cmd := range app.Commands {
		check(cmd.Name, cmd.Flags)
	}
	res := runCLI(t, "sync", "--help")
	for _, env := range []string{"$IPFS_SYNC_DRY_RUN", "$IPFS_SYNC_CID_VERSION", "$IPFS_SYNC_API"} {
		if !strings.Contains(res.stdout, env) {
			t.Errorf("sync --help does not mention %s", env)
		}
	}
}

func TestEnvVarName(t *testing.T) {
	for flag, want := range map[string]string{"repo": "IPFS_SYNC_REPO", "dry-run": "IPFS_SYNC_DRY_RUN", "max-hamt-fanout": "IPFS_SYNC_MAX_HAMT_FANOUT"} {
		if got := envVar(flag); got != want {
			t.Errorf("envVar(%q) = %q, want %q", flag, got, want)
		}
	}
}
