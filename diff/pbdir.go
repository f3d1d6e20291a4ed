package diff

import (
	"encoding/binary"

	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"

	"github.com/ipfs-sync/ipfs-sync/metadata"
)

// basicDir lists a basic (not sharded) UnixFS directory straight from its
// dag-pb block; ok is false for anything else, or a block not in the
// canonical form kubo and boxo write, and the caller then decodes it with
// boxo.
//
// Why not boxo's decoder here: it builds an IPLD node, then a ProtoNode
// with a copy of every link, before the entries can be read. A re-sync
// reads every directory of the previous root this way (from the index's
// copies), and that decoding was 15 % of the CPU of an unchanged re-sync
// of the large preset (docs/benchmarks.md). Here the block becomes one
// string whose substrings are the names, and a CID per link. The UnixFS
// Data field is still parsed by boxo. TestBasicDirMatchesBoxo checks the
// result against boxo's for many directories.
func basicDir(raw []byte) (PrevDir, bool) {
	s := string(raw) // the names are substrings of this one copy
	// Links of real directories take 40 bytes or more: usually room for all.
	entries := make([]Link, 0, len(raw)/40)
	var data []byte
	haveData := false
	for i := 0; i < len(raw); {
		tag, start, end, ok := field(raw, i)
		if !ok {
			return PrevDir{}, false
		}
		switch {
		case tag == 0x12 && !haveData: // Links (2), all before Data
			l, ok := pbLink(raw, s, start, end)
			if !ok {
				return PrevDir{}, false
			}
			entries = append(entries, l)
		case tag == 0x0a && !haveData: // Data (1)
			data, haveData = raw[start:end], true
		default:
			return PrevDir{}, false
		}
		i = end
	}
	if !haveData {
		return PrevDir{}, false
	}
	fsn, err := ft.FSNodeFromBytes(data)
	if err != nil || fsn.Type() != ft.TDirectory {
		return PrevDir{}, false
	}
	k, err := metadata.FromFSNode(fsn)
	if err != nil {
		return PrevDir{}, false
	}
	if _, ok := sortByName(entries); !ok {
		return PrevDir{}, false // boxo's path reports the duplicate
	}
	return PrevDir{Known: k, Entries: entries}, true
}

// field reads the length-delimited field at raw[i:]: its tag and where its
// body starts and ends.
func field(raw []byte, i int) (tag uint64, start, end int, ok bool) {
	tag, n := binary.Uvarint(raw[i:])
	if n <= 0 || tag&7 != 2 {
		return 0, 0, 0, false
	}
	i += n
	l, n := binary.Uvarint(raw[i:])
	if n <= 0 || l > uint64(len(raw)-i-n) {
		return 0, 0, 0, false
	}
	i += n
	return tag, i, i + int(l), true
}

// pbLink reads a PBLink in raw[start:end]: Hash (1), then optional Name (2)
// and Tsize (3), in that order, as dag-pb requires.
func pbLink(raw []byte, s string, start, end int) (Link, bool) {
	var l Link
	seen := 0
	for i := start; i < end; {
		tag, n := binary.Uvarint(raw[i:end])
		if n <= 0 {
			return Link{}, false
		}
		switch tag {
		case 0x0a, 0x12: // Hash, Name
			_, fs, fe, ok := field(raw[:end], i)
			if !ok {
				return Link{}, false
			}
			if tag == 0x0a {
				if seen != 0 {
					return Link{}, false
				}
				c, err := cid.Cast(raw[fs:fe])
				if err != nil {
					return Link{}, false
				}
				l.Cid, seen = c, 1
			} else {
				if seen != 1 {
					return Link{}, false
				}
				l.Name, seen = s[fs:fe], 2
			}
			i = fe
		case 0x18: // Tsize
			if seen == 0 || seen == 3 {
				return Link{}, false
			}
			v, m := binary.Uvarint(raw[i+n : end])
			if m <= 0 {
				return Link{}, false
			}
			l.Tsize, seen = v, 3
			i += n + m
		default:
			return Link{}, false
		}
	}
	return l, seen != 0
}
