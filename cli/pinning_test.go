package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs-sync/ipfs-sync/pinsvc"
)

// TestPinningToken: the pinning service's token comes from the
// environment or config.json, is a usage error on the command line (exit
// 2, before anything runs), and is never printed, whatever goes wrong.
// The hand-offs here go to a closed loopback port: a run that gets past
// the checks ends with the failed push to kubo (exit 5). What a real
// service does with the token is e2e's TestPinningService.
func TestPinningToken(t *testing.T) {
	const token = "tok-5ecret-value"
	src := tree(t)
	api := []string{"--api", "http://127.0.0.1:1"}
	svc := []string{"--pinning-service", "http://127.0.0.1:1/pins-api"}
	handOff := slices.Concat(api, svc)
	tests := []struct {
		name   string
		env    string
		config string
		flags  []string // sync's
		code   int
		want   string // in stderr
	}{
		{"environment", token, "", handOff, ExitHandOff, "handing it to kubo failed"},
		{"config.json", "", `{"pinning-token": "` + token + `"}`, handOff, ExitHandOff, "handing it to kubo failed"},
		{"config.json, sync's section", "", `{"sync": {"pinning-token": "` + token + `"}}`, handOff, ExitHandOff, "handing it to kubo failed"},
		{"command line", "", "", slices.Concat(handOff, []string{"--pinning-token", token}), ExitUsage, "not on the command line"},
		{"command line, no service", "", "", []string{"--pinning-token", token}, ExitUsage, "not on the command line"},
		{"command line over the environment", "other", "", slices.Concat(handOff, []string{"--pinning-token=" + token}), ExitUsage, "not on the command line"},
		{"command line over config.json", "", `{"pinning-token": "other"}`, slices.Concat(handOff, []string{"--pinning-token", token}), ExitUsage, "not on the command line"},
		{"config.json, not a string", "", `{"pinning-token": {"t": "` + token + `"}}`, handOff, ExitUsage, "want a string"},
		{"credentials in the URL", "", "", slices.Concat(api, []string{"--pinning-service", "http://mirror:" + token + "@127.0.0.1:1"}), ExitUsage, "not the URL"},
		{"no --api", token, "", svc, ExitUsage, "needs --api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			if tt.env != "" {
				t.Setenv("IPFS_SYNC_PINNING_TOKEN", tt.env)
			}
			repo := filepath.Join(t.TempDir(), "repo")
			if tt.config != "" {
				if err := os.MkdirAll(repo, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(repo, configFile), []byte(tt.config), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			res := runCLI(t, slices.Concat([]string{"--repo", repo, "--json", "sync"}, tt.flags, []string{src})...)
			if res.code != tt.code || !strings.Contains(res.stderr, tt.want) {
				t.Errorf("exit %d, want %d with %q\nstderr: %s", res.code, tt.code, tt.want, res.stderr)
			}
			if strings.Contains(res.stdout+res.stderr, token) {
				t.Errorf("the token was printed:\nstdout: %s\nstderr: %s", res.stdout, res.stderr)
			}
		})
	}
	t.Run("help", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("IPFS_SYNC_PINNING_TOKEN", token)
		for _, cmd := range []string{"sync", "push"} {
			res := runCLI(t, cmd, "--help")
			if res.code != 0 || strings.Contains(res.stdout+res.stderr, token) || strings.Contains(res.stdout, "--pinning-token") || !strings.Contains(res.stdout, "IPFS_SYNC_PINNING_TOKEN") {
				t.Errorf("%s --help: exit %d; it must name IPFS_SYNC_PINNING_TOKEN but neither the token nor a --pinning-token flag:\n%s", cmd, res.code, res.stdout)
			}
		}
	})
}

// TestPinningLine: the human summary says what was sent, where, under
// which name and request, the status, and the delegates when there are
// any.
func TestPinningLine(t *testing.T) {
	base := pinsvc.Result{Service: "https://pins.example/api/v1", Name: "debian", RequestID: "req-1", Status: pinsvc.Pinned, Delegates: []string{}}
	with := func(f func(*pinsvc.Result)) pinsvc.Result { r := base; f(&r); return r }
	tests := []struct {
		r    pinsvc.Result
		want string
	}{
		{with(func(r *pinsvc.Result) { r.Sent = pinsvc.SentAdd }), `pin requested at https://pins.example/api/v1 as "debian" (request req-1): pinned`},
		{with(func(r *pinsvc.Result) { r.Sent = pinsvc.SentAdd; r.Status = pinsvc.Queued }), `pin requested at https://pins.example/api/v1 as "debian" (request req-1): queued`},
		{with(func(r *pinsvc.Result) {
			r.Sent, r.Status, r.Delegates = pinsvc.SentNone, pinsvc.Failed, []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWA", "/ip4/127.0.0.2/tcp/4001/p2p/12D3KooWB"}
		}), `pin already requested at https://pins.example/api/v1 as "debian" (request req-1): failed; delegates /ip4/127.0.0.1/tcp/4001/p2p/12D3KooWA /ip4/127.0.0.2/tcp/4001/p2p/12D3KooWB`},
	}
	for _, tt := range tests {
		if got := pinningLine(tt.r); got != tt.want {
			t.Errorf("%+v:\n got %s\nwant %s", tt.r, got, tt.want)
		}
	}
}
