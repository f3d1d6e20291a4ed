// Package dagpb owns the dag-pb and UnixFS Data wire format as kubo and
// boxo produce it: the field numbers, an appending encoder that writes
// the bytes boxo's ProtoNode and FSNode marshal to, and a decoder for
// nodes in that canonical form.
//
// Why not boxo's types: a ProtoNode copies every link and a FSNode is a
// protobuf message, both allocated per node, and the importer builds or
// reads a node per leaf and per directory. Here a node is appended to a
// buffer the caller reuses, and read without building anything. boxo
// stays the reference: the fuzz tests encode with one and decode with the
// other, both ways, and compare.
package dagpb

import (
	"io/fs"
	"time"

	"github.com/ipfs/boxo/files"
	pb "github.com/ipfs/boxo/ipld/unixfs/pb"
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of dag-pb's PBNode and PBLink (the dag-pb spec). A node
// is its links, in order, then its Data.
const (
	nodeData  protowire.Number = 1 // bytes: the UnixFS Data message
	nodeLinks protowire.Number = 2 // PBLink, repeated
	linkHash  protowire.Number = 1 // bytes: the CID
	linkName  protowire.Number = 2 // string
	linkTsize protowire.Number = 3 // varint: the bytes of the DAG under the link
)

// Field numbers of UnixFS's Data and IPFSTimestamp messages (unixfs.proto).
const (
	fieldType       protowire.Number = 1 // varint, required: pb.Data_DataType
	fieldData       protowire.Number = 2 // bytes
	fieldFilesize   protowire.Number = 3 // varint
	fieldBlocksizes protowire.Number = 4 // varint, repeated (not packed)
	fieldHashType   protowire.Number = 5 // varint
	fieldFanout     protowire.Number = 6 // varint
	fieldMode       protowire.Number = 7 // varint (uint32)
	fieldMtime      protowire.Number = 8 // IPFSTimestamp
	timeSeconds     protowire.Number = 1 // varint (int64), required
	timeNanos       protowire.Number = 2 // fixed32
)

// tag is a field's key byte: every field number here is below 16.
func tag(n protowire.Number, t protowire.Type) byte { return byte(n)<<3 | byte(t) }

// UnixFS is a UnixFS Data message, field by field. Data is absent when
// nil; the optional scalar fields are present when Has says so.
type UnixFS struct {
	Type       pb.Data_DataType
	Data       []byte
	Filesize   uint64
	Blocksizes []uint64
	HashType   uint64
	Fanout     uint64
	// Mode as stored: the permission bits (FileMode reads them) and 20
	// more that UnixFS reserves.
	Mode         uint32
	MtimeSeconds int64
	MtimeNanos   uint32
	Has          Has
}

// Has says which optional scalar fields of a UnixFS message are present.
type Has uint8

// The optional scalar fields. HasMtimeNanos goes with HasMtime only.
const (
	HasFilesize Has = 1 << iota
	HasHashType
	HasFanout
	HasMode
	HasMtime
	HasMtimeNanos
)

// FileMode is the mode as boxo's FSNode.Mode reads it: the permission
// bits, with the directory or symlink type bit; 0 when the permission
// bits are.
func (u *UnixFS) FileMode() fs.FileMode {
	perms := u.Mode & 0xFFF
	if perms == 0 {
		return 0
	}
	m := files.UnixPermsToModePerms(perms)
	switch u.Type {
	case pb.Data_Directory, pb.Data_HAMTShard:
		m |= fs.ModeDir
	case pb.Data_Symlink:
		m |= fs.ModeSymlink
	}
	return m
}

// ModTime is the mtime as boxo's FSNode.ModTime reads it: zero when it is
// absent or its nanoseconds are out of range.
func (u *UnixFS) ModTime() time.Time {
	switch {
	case u.Has&HasMtime == 0:
		return time.Time{}
	case u.Has&HasMtimeNanos == 0:
		return time.Unix(u.MtimeSeconds, 0)
	case u.MtimeNanos < 1 || u.MtimeNanos > 999_999_999:
		return time.Time{}
	}
	return time.Unix(u.MtimeSeconds, int64(u.MtimeNanos))
}

// SetMode stores m's permission bits as boxo's FSNode.SetMode does,
// keeping the mode's other bits; a mode with no bits left is absent.
func (u *UnixFS) SetMode(m fs.FileMode) {
	u.Mode = u.Mode&^0xFFF | files.ModePermsToUnixPerms(m)&0xFFF
	if u.Mode == 0 {
		u.Has &^= HasMode
		return
	}
	u.Has |= HasMode
}

// SetModTime stores t as boxo's FSNode.SetModTime does: absent when t is
// zero, nanoseconds only when there are some.
func (u *UnixFS) SetModTime(t time.Time) {
	u.MtimeSeconds, u.MtimeNanos = 0, 0
	u.Has &^= HasMtime | HasMtimeNanos
	if t.IsZero() {
		return
	}
	u.MtimeSeconds = t.Unix()
	u.Has |= HasMtime
	if ns := t.Nanosecond(); ns > 0 {
		u.MtimeNanos = uint32(ns)
		u.Has |= HasMtimeNanos
	}
}
