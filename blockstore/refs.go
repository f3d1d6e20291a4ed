package blockstore

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Version is one root a ref has had.
type Version struct {
	Root    string          `json:"root"`
	Time    time.Time       `json:"time"`
	Profile string          `json:"profile"`
	Summary json.RawMessage `json:"summary,omitempty"`
	// Source is the absolute SRC a sync --nocopy referenced files under:
	// a later run from elsewhere (the tree moved, same --name) reads them
	// again instead of trusting references to paths that are gone.
	Source string `json:"source,omitempty"`
	// Collected: gc may have removed this version's blocks.
	Collected bool `json:"collected,omitempty"`
}

// Ref is a name and the roots it has had, oldest first.
type Ref struct {
	Name    string    `json:"name"`
	History []Version `json:"history"`
}

// Current is the ref's newest version.
func (r Ref) Current() (Version, bool) {
	if len(r.History) == 0 {
		return Version{}, false
	}
	return r.History[len(r.History)-1], true
}

func (s *Store) refPath(name string) string {
	// Names are often absolute paths; encode them into one safe file name.
	return filepath.Join(s.dir, "refs", base64.RawURLEncoding.EncodeToString([]byte(name))+".json")
}

// Ref reads the ref called name; ok is false when it does not exist.
func (s *Store) Ref(name string) (ref Ref, ok bool, err error) {
	data, err := os.ReadFile(s.refPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return Ref{Name: name}, false, nil
	}
	if err != nil {
		return Ref{}, false, fmt.Errorf("read ref %q: %w", name, err)
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		return Ref{}, false, fmt.Errorf("ref %q in %s is corrupt: %w", name, s.refPath(name), err)
	}
	return ref, true, nil
}

// Refs lists every ref, sorted by name.
func (s *Store) Refs() ([]Ref, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "refs"))
	if err != nil {
		return nil, fmt.Errorf("list refs: %w", err)
	}
	var out []Ref
	for _, e := range ents {
		enc, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		name, err := base64.RawURLEncoding.DecodeString(enc)
		if err != nil {
			continue
		}
		r, found, err := s.Ref(string(name))
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Advance appends v to the ref called name and writes it atomically. Call
// it only after Sync: the ref must never name a root whose blocks could be
// lost.
func (s *Store) Advance(name string, v Version) error {
	ref, _, err := s.Ref(name)
	if err != nil {
		return err
	}
	ref.Name = name
	ref.History = append(ref.History, v)
	data, err := json.MarshalIndent(ref, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.refPath(name), data)
}

// Newest is the set of the newest keep distinct roots of the ref (keep <= 0:
// all of them). A sync that changed nothing records its root again, and a
// revert records an older one: neither is a version more to keep.
func (r Ref) Newest(keep int) map[string]bool {
	roots := map[string]bool{}
	for i := len(r.History) - 1; i >= 0; i-- {
		if keep > 0 && len(roots) == keep && !roots[r.History[i].Root] {
			continue
		}
		roots[r.History[i].Root] = true
	}
	return roots
}

// Retire marks every version of every ref whose root is not among its
// newest keep distinct roots (Ref.Newest) as collected, and returns the
// roots still kept, each once. gc calls it before it removes anything, so
// a version is never listed as whole after its blocks may have gone.
func (s *Store) Retire(keep int) ([]string, error) {
	refs, err := s.Refs()
	if err != nil {
		return nil, err
	}
	var roots []string
	seen := map[string]bool{}
	for _, r := range refs {
		newest := r.Newest(keep)
		changed := false
		for i := range r.History {
			v := &r.History[i]
			if !newest[v.Root] && !v.Collected {
				v.Collected, changed = true, true
			}
			if !v.Collected && !seen[v.Root] {
				seen[v.Root] = true
				roots = append(roots, v.Root)
			}
		}
		if changed {
			data, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				return nil, err
			}
			if err := writeFileAtomic(s.refPath(r.Name), data); err != nil {
				return nil, err
			}
		}
	}
	return roots, nil
}
