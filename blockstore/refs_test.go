package blockstore

import (
	"slices"
	"testing"
	"time"
)

// TestRetireCountsDistinctRoots: --keep N keeps the newest N distinct
// roots of each ref. A sync that changed nothing records its root again;
// that repeat must not push an older root out.
func TestRetireCountsDistinctRoots(t *testing.T) {
	tests := []struct {
		name      string
		history   []string // oldest first
		keep      int
		kept      []string // Retire's answer, in any order
		collected []bool   // per version, oldest first
	}{
		{"unchanged re-sync", []string{"v1", "v2", "v2"}, 2, []string{"v1", "v2"}, []bool{false, false, false}},
		{"unchanged re-syncs, keep 1", []string{"v1", "v2", "v2", "v2"}, 1, []string{"v2"}, []bool{true, false, false, false}},
		{"distinct roots", []string{"v1", "v2", "v3"}, 2, []string{"v2", "v3"}, []bool{true, false, false}},
		{"a revert keeps its older version too", []string{"v1", "v2", "v1"}, 2, []string{"v1", "v2"}, []bool{false, false, false}},
		{"a revert, keep 1", []string{"v1", "v2", "v1"}, 1, []string{"v1"}, []bool{false, true, false}},
		{"keep 0 keeps all", []string{"v1", "v2", "v2"}, 0, []string{"v1", "v2"}, []bool{false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for i, root := range tt.history {
				if err := s.Advance("ref", Version{Root: root, Time: time.Unix(int64(i), 0)}); err != nil {
					t.Fatal(err)
				}
			}
			kept, err := s.Retire(tt.keep)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(kept)
			if !slices.Equal(kept, tt.kept) {
				t.Errorf("kept %v, want %v", kept, tt.kept)
			}
			ref, _, err := s.Ref("ref")
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range ref.History {
				if v.Collected != tt.collected[i] {
					t.Errorf("version %d (%s): collected %v, want %v", i, v.Root, v.Collected, tt.collected[i])
				}
			}
		})
	}
}
