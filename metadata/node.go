package metadata

import (
	"fmt"
	"io/fs"
	"strings"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	ipld "github.com/ipfs/go-ipld-format"
)

// Known is what a previous root, or the local index standing in for it,
// says about an entry. Mode and mtime are known only where they were stored.
type Known struct {
	Stat
	HasMode  bool
	HasMTime bool
}

// FromNode reads an entry's type, size and stored metadata from its UnixFS
// root node.
func FromNode(nd ipld.Node) (Known, error) {
	switch n := nd.(type) {
	case *mdag.RawNode:
		return Known{Stat: Stat{Type: File, Size: int64(len(n.RawData()))}}, nil
	case *mdag.ProtoNode:
		fsn, err := ft.FSNodeFromBytes(n.Data())
		if err != nil {
			return Known{}, fmt.Errorf("node %s: %w", nd.Cid(), err)
		}
		k, err := FromFSNode(fsn)
		if err != nil {
			return Known{}, fmt.Errorf("node %s: %w", nd.Cid(), err)
		}
		return k, nil
	}
	return Known{}, fmt.Errorf("node %s: not a UnixFS node", nd.Cid())
}

// FromFSNode is FromNode for a dag-pb node's UnixFS data, already parsed.
func FromFSNode(fsn *ft.FSNode) (Known, error) {
	k := Known{}
	switch fsn.Type() {
	case ft.TFile, ft.TRaw:
		k.Type, k.Size = File, int64(fsn.FileSize())
	case ft.TDirectory, ft.THAMTShard:
		k.Type = Dir
	case ft.TSymlink:
		k.Type, k.Size = Symlink, int64(len(fsn.Data()))
	default:
		return Known{}, fmt.Errorf("unsupported UnixFS type %s", fsn.Type())
	}
	if m := fsn.Mode(); m != 0 || fsn.ExtendedMode() != 0 {
		k.Mode, k.HasMode = m, true
	}
	if t := fsn.ModTime(); !t.IsZero() {
		k.MTime, k.HasMTime = t.UTC(), true
	}
	return k, nil
}

// Why lists the reasons an entry differs from what is known of it.
type Why uint8

// Reasons, in the order they are reported.
const (
	WhyType Why = 1 << iota
	WhySize
	WhyMTime
	WhyMode
	WhyContent
)

func (w Why) String() string {
	var out []string
	for _, r := range []struct {
		bit  Why
		name string
	}{{WhyType, "type"}, {WhySize, "size"}, {WhyMTime, "mtime"}, {WhyMode, "mode"}, {WhyContent, "content"}} {
		if w&r.bit != 0 {
			out = append(out, r.name)
		}
	}
	return strings.Join(out, ",")
}

// OnlyMeta reports whether only mode and/or mtime differ: the file's data
// is unchanged and its root can be rebuilt over the stored leaves.
func (w Why) OnlyMeta() bool { return w != 0 && w&^(WhyMTime|WhyMode) == 0 }

const permBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// Changed is rsync's quick check of a walked entry against what is known
// of its previous version: type, size, then mtime to the nanosecond and the
// permission bits. A field that was not recorded cannot vouch for the
// entry, so an unknown mtime counts as changed; an unknown mode does not
// (a mode that is not stored changes no CID).
func Changed(local Stat, prev Known) Why {
	var w Why
	if local.Type != prev.Type {
		return WhyType
	}
	if local.Type == File && local.Size != prev.Size {
		w |= WhySize
	}
	if !prev.HasMTime || !local.MTime.Equal(prev.MTime) {
		w |= WhyMTime
	}
	if prev.HasMode && local.Mode&permBits != prev.Mode&permBits {
		w |= WhyMode
	}
	return w
}
