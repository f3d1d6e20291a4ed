package sync

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// TestTouchedFileWhy: a file whose mtime moved but whose content did not
// is itemised (mtime), not (mtime,content), and counted metadata only,
// also where no index entry vouches for its content (verify, or --base
// with a root that is not the ref's); one rewritten at the same size is
// (mtime,content) and modified.
func TestTouchedFileWhy(t *testing.T) {
	touched := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name    string
		rewrite bool   // same size, other bytes
		base    bool   // diff against the first root, not the ref's current one
		ref     string // the run's ref ("" : the one that made the roots)
		dryRun  bool
		why     metadata.Why
	}{
		{name: "dry run, index", dryRun: true, why: metadata.WhyMTime},
		{name: "dry run, no index (verify)", base: true, ref: "verify", dryRun: true, why: metadata.WhyMTime},
		{name: "real run, no index", base: true, ref: "other", why: metadata.WhyMTime},
		{name: "rewritten, no index", rewrite: true, base: true, ref: "verify", dryRun: true, why: metadata.WhyMTime | metadata.WhyContent},
		{name: "rewritten, index", rewrite: true, dryRun: true, why: metadata.WhyMTime | metadata.WhyContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			src := incTree(t)
			store, err := blockstore.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			opts := Options{Src: src, Name: "mirror", Profile: incProfile(t, "mtime,mode")}
			first, err := Run(ctx, store, opts)
			if err != nil {
				t.Fatal(err)
			}
			// A second root, so that the first is not the ref's current one.
			if err := os.WriteFile(filepath.Join(src, "new.txt"), []byte("new"), 0o644); err != nil {
				t.Fatal(err)
			}
			old := time.Unix(1_600_000_000, 0)
			if err := os.Chtimes(filepath.Join(src, "new.txt"), old, old); err != nil {
				t.Fatal(err)
			}
			if _, err := Run(ctx, store, opts); err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(src, "e.txt")
			if tt.rewrite {
				if err := os.WriteFile(f, []byte("CONTENT OF e.txt"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chtimes(f, touched, touched); err != nil {
				t.Fatal(err)
			}
			if tt.base {
				opts.Base = first.Root
			}
			if tt.ref != "" {
				opts.Name = tt.ref
			}
			opts.DryRun = tt.dryRun
			var got []Change
			opts.Item = func(c Change) { got = append(got, c) }
			sum, err := Run(ctx, store, opts)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, c := range got {
				if c.Path == "e.txt" {
					found = true
					if c.Why != tt.why {
						t.Errorf("e.txt itemised (%s), want (%s)", c.Why, tt.why)
					}
				}
			}
			if !found {
				t.Fatalf("e.txt not itemised: %v", got)
			}
			fc := sum.FileChanges
			if tt.why&metadata.WhyContent == 0 && (fc.Metadata != 1 || fc.Modified != 0) {
				t.Errorf("counted %+v, want e.txt metadata only", fc)
			}
			if tt.why&metadata.WhyContent != 0 && fc.Modified != 1 {
				t.Errorf("counted %+v, want e.txt modified", fc)
			}
		})
	}
}
