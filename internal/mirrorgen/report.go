package mirrorgen

import "slices"

// Cycle is what one publish cycle did. After it, the tree holds Files
// regular files (the count before, plus Added, minus Removed) of Bytes.
type Cycle struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// ChangedFiles are the paths whose content is new: Added plus
	// IndexRewrites; ChangedBytes is their size.
	ChangedFiles int   `json:"changed_files"`
	ChangedBytes int64 `json:"changed_bytes"`
	// Added files are new paths with new content (new packages and
	// versions, a new flat directory); Removed files are gone; Archived
	// files moved (CRAN's Archive/) with their content and mtime.
	Added    int `json:"added"`
	Removed  int `json:"removed"`
	Archived int `json:"archived"`
	// Packages (a Debian source, a CRAN, PyPI or npm package) new, gone
	// and given a new version.
	NewPackages     int `json:"new_packages"`
	RemovedPackages int `json:"removed_packages"`
	Upgraded        int `json:"upgraded"`
	// IndexRewrites are files replaced by new content under the same path
	// (Packages, Release, PACKAGES, index.html, index.json, traces).
	IndexRewrites int `json:"index_rewrites"`
	// Touched files got a new mtime only; Chmod files a new mode only.
	Touched     int `json:"touched"`
	Chmod       int `json:"chmod"`
	DirsAdded   int `json:"dirs_added"`
	DirsRemoved int `json:"dirs_removed"`
	// A new release's binary directory, one entry per CRAN package, and
	// the oldest one dropped: the occasional huge flat directory.
	FlatDirAdded   string `json:"flat_dir_added,omitempty"`
	FlatDirRemoved string `json:"flat_dir_removed,omitempty"`
	Seed           uint64 `json:"seed"`
}

func (c *cycle) result() Cycle {
	r := c.res
	r.Files = len(c.files)
	for _, s := range c.files {
		r.Bytes += s
	}
	for _, f := range append(slices.Clone(c.writes), c.rewrites...) {
		r.ChangedFiles++
		r.ChangedBytes += f.size
	}
	return r
}
