package diff

import (
	"reflect"
	"strings"
	"testing"
)

// Merge pairs the names two sorted listings share and hands over the rest
// one side at a time, in name order, whatever runs out first.
func TestMerge(t *testing.T) {
	for _, tc := range []struct {
		name  string
		local []string
		prev  []string
		want  []string // "l|p", "l|", "|p"
	}{
		{"both empty", nil, nil, nil},
		{"only local", []string{"a", "b"}, nil, []string{"a|", "b|"}},
		{"only previous", nil, []string{"a", "b"}, []string{"|a", "|b"}},
		{"same", []string{"a", "b"}, []string{"a", "b"}, []string{"a|a", "b|b"}},
		{"interleaved", []string{"a", "c", "e"}, []string{"b", "c", "d", "f"}, []string{"a|", "|b", "c|c", "|d", "e|", "|f"}},
		{"previous runs out first", []string{"a", "x", "y"}, []string{"a"}, []string{"a|a", "x|", "y|"}},
		{"bytes, not runes", []string{"B", "a", "\xff"}, []string{"a", "é"}, []string{"B|", "a|a", "|é", "\xff|"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := make([]Entry, len(tc.local))
			for i, n := range tc.local {
				local[i] = Entry{Name: n}
			}
			prev := make([]Link, len(tc.prev))
			for i, n := range tc.prev {
				prev[i] = Link{Name: n}
			}
			var got []string
			Merge(local, prev, func(e *Entry, p *Link) int { return strings.Compare(e.Name, p.Name) }, func(e *Entry, p *Link) {
				var l, r string
				if e != nil {
					l = e.Name
				}
				if p != nil {
					r = p.Name
				}
				got = append(got, l+"|"+r)
			})
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
