package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs-sync/ipfs-sync/internal/mirrorgen"
)

// TestMain lets the test binary be mkmirror itself, so that a test can run
// each step in a process of its own.
func TestMain(m *testing.M) {
	if os.Getenv("MKMIRROR_TEST_AS_COMMAND") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func command(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MKMIRROR_TEST_AS_COMMAND=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mkmirror %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// TestSeparateProcesses: gen, mutate 1 and mutate 2 as three processes give
// the tree (and the cycle reports) that one process gives.
func TestSeparateProcesses(t *testing.T) {
	sizes := []string{"--files", "200", "--bytes", "1M", "--flat", "30", "--big", "0"}
	a := filepath.Join(t.TempDir(), "a")
	command(t, append(append([]string{"gen", "--seed", "9"}, sizes...), a)...)
	var reports []mirrorgen.Cycle
	for _, seed := range []string{"1", "2"} {
		var c mirrorgen.Cycle
		if err := json.Unmarshal([]byte(command(t, "mutate", "--seed", seed, a)), &c); err != nil {
			t.Fatal(err)
		}
		reports = append(reports, c)
	}
	got := strings.TrimSpace(command(t, "fingerprint", a))

	b := filepath.Join(t.TempDir(), "b")
	p, _ := mirrorgen.PresetNamed("tiny")
	p.Files, p.Bytes, p.Flat, p.Big = 200, 1<<20, 30, 0
	if _, err := mirrorgen.Generate(b, mirrorgen.Config{Preset: p, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	for i, seed := range []uint64{1, 2} {
		c, err := mirrorgen.Mutate(b, mirrorgen.MutateOptions{Seed: seed, Scale: 1})
		if err != nil {
			t.Fatal(err)
		}
		if c != reports[i] {
			t.Errorf("mutate --seed %d reported %+v, in one process %+v", seed, reports[i], c)
		}
	}
	want, err := mirrorgen.Fingerprint(b, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("three processes: %s, one process: %s", got, want)
	}
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"300M", 300 << 20, true},
		{"2GiB", 2 << 30, true},
		{"50MB", 50e6, true},
		{"1.5G", 3 << 29, true},
		{"4096", 4096, true},
		{"12kb", 12e3, true},
		{"", 0, false},
		{"M", 0, false},
		{"3X", 0, false},
		{"-1G", 0, false},
	} {
		got, err := parseBytes(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"frobnicate"}, 2},
		{[]string{"gen"}, 2},
		{[]string{"gen", "--preset", "huge", "x"}, 2},
		{[]string{"gen", "a", "b"}, 2},
		{[]string{"mutate", "--scale", "-1", t.TempDir()}, 1},
		{[]string{"stats", filepath.Join(t.TempDir(), "absent")}, 1},
		{[]string{"gen", "-h"}, 0},
		{[]string{"version"}, 0},
	} {
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != tc.code {
			t.Errorf("mkmirror %s: exit %d, want %d\n%s", strings.Join(tc.args, " "), code, tc.code, errOut.String())
		}
	}
}
