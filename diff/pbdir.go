package diff

import (
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/internal/dagpb"
	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// basicDir lists a basic (not sharded) UnixFS directory straight from its
// dag-pb block with dagpb's decoder; ok is false for anything else, or a
// block not in the canonical form kubo and boxo write, and the caller
// then decodes it with boxo.
//
// Why not boxo's decoder here: it builds an IPLD node, then a ProtoNode
// with a copy of every link, before the entries can be read. A re-sync
// reads every directory of the previous root this way (from the index's
// copies), and that decoding was 15 % of the CPU of an unchanged re-sync
// of the large preset (docs/benchmarks.md). Here the block becomes one
// string whose substrings are the names, and a CID per link.
// TestBasicDirMatchesBoxo checks the result against boxo's for many
// directories.
func basicDir(raw []byte) (PrevDir, bool) {
	// Links of real directories take 40 bytes or more: usually room for all.
	entries := make([]Link, 0, len(raw)/40)
	data, err := dagpb.DecodeNode(raw, func(name string, c cid.Cid, tsize uint64) {
		entries = append(entries, Link{Name: name, Cid: c, Tsize: tsize})
	})
	if err != nil || data == nil {
		return PrevDir{}, false
	}
	u, err := dagpb.DecodeUnixFS(data)
	if err != nil || u.Type != ft.TDirectory {
		return PrevDir{}, false
	}
	// What metadata.FromFSNode reads from a directory's FSNode: a mode
	// if any of its bits are set, an mtime if it is not zero.
	k := metadata.Known{Stat: metadata.Stat{Type: metadata.Dir}}
	if u.Mode != 0 {
		k.Mode, k.HasMode = u.FileMode(), true
	}
	if t := u.ModTime(); !t.IsZero() {
		k.MTime, k.HasMTime = t.UTC(), true
	}
	if _, ok := sortByName(entries); !ok {
		return PrevDir{}, false // boxo's path reports the duplicate
	}
	return PrevDir{Known: k, Entries: entries}, true
}
