package dagpb

import (
	"encoding/binary"

	pb "github.com/ipfs/boxo/ipld/unixfs/pb"
	"github.com/ipfs/go-cid"
	"google.golang.org/protobuf/encoding/protowire"
)

// The encoder appends to the caller's buffer and allocates nothing of its
// own: it builds every leaf and directory of an import. A node is its
// links (AppendLink, in name order, as ProtoNode sorts them) followed by
// its Data (AppendData or AppendUnixFS).

// AppendLink appends a link as ProtoNode writes it: Hash, Name and Tsize,
// each present even when empty or zero. The name is namePrefix followed
// by name, so that a HAMT shard's link (the slot's digits, then the
// entry's name) is written without joining the two first.
func AppendLink(dst []byte, c cid.Cid, namePrefix []byte, name string, tsize uint64) []byte {
	hash := c.KeyString()
	nameLen := len(namePrefix) + len(name)
	n := 1 + protowire.SizeBytes(len(hash)) + 1 + protowire.SizeBytes(nameLen) + 1 + protowire.SizeVarint(tsize)
	dst = append(dst, tag(nodeLinks, protowire.BytesType))
	dst = protowire.AppendVarint(dst, uint64(n))
	dst = append(dst, tag(linkHash, protowire.BytesType))
	dst = protowire.AppendVarint(dst, uint64(len(hash)))
	dst = append(dst, hash...)
	dst = append(dst, tag(linkName, protowire.BytesType))
	dst = protowire.AppendVarint(dst, uint64(nameLen))
	dst = append(dst, namePrefix...)
	dst = append(dst, name...)
	dst = append(dst, tag(linkTsize, protowire.VarintType))
	return protowire.AppendVarint(dst, tsize)
}

// AppendData appends a node's Data field holding data, an encoded UnixFS
// message.
func AppendData(dst, data []byte) []byte {
	dst = append(dst, tag(nodeData, protowire.BytesType))
	dst = protowire.AppendVarint(dst, uint64(len(data)))
	return append(dst, data...)
}

// AppendUnixFS appends a node's Data field holding u, encoded as boxo's
// proto.Marshal encodes it: the present fields in field order.
func AppendUnixFS(dst []byte, u *UnixFS) []byte {
	n := 1 + protowire.SizeVarint(typeVarint(u.Type)) + leafTailLen(u)
	if u.Data != nil {
		n += 1 + protowire.SizeBytes(len(u.Data))
	}
	dst = append(dst, tag(nodeData, protowire.BytesType))
	dst = protowire.AppendVarint(dst, uint64(n))
	dst = append(dst, tag(fieldType, protowire.VarintType))
	dst = protowire.AppendVarint(dst, typeVarint(u.Type))
	if u.Data != nil {
		dst = append(dst, tag(fieldData, protowire.BytesType))
		dst = protowire.AppendVarint(dst, uint64(len(u.Data)))
		dst = append(dst, u.Data...)
	}
	return AppendLeafTail(dst, u)
}

// A leaf is a node without links whose UnixFS message holds file data:
// AppendLeafHead, the data, then AppendLeafTail (or fields encoded by
// another) are the bytes AppendUnixFS writes, built around data that is
// read into its place.

// AppendLeafHead appends what comes before the n bytes of data in a node
// without links whose UnixFS message is its Type t, its Data, and then
// tailLen bytes of other fields: the node's Data tag and length, the Type
// field, the Data field's tag and length.
func AppendLeafHead(dst []byte, t pb.Data_DataType, n, tailLen int) []byte {
	dst = append(dst, tag(nodeData, protowire.BytesType))
	dst = protowire.AppendVarint(dst, uint64(1+protowire.SizeVarint(typeVarint(t))+1+protowire.SizeBytes(n)+tailLen))
	dst = append(dst, tag(fieldType, protowire.VarintType))
	dst = protowire.AppendVarint(dst, typeVarint(t))
	dst = append(dst, tag(fieldData, protowire.BytesType))
	return protowire.AppendVarint(dst, uint64(n))
}

// AppendLeafTail appends the fields of u that come after Data: Filesize,
// Blocksizes, HashType, Fanout, Mode and Mtime, those present.
func AppendLeafTail(dst []byte, u *UnixFS) []byte {
	if u.Has&HasFilesize != 0 {
		dst = append(dst, tag(fieldFilesize, protowire.VarintType))
		dst = protowire.AppendVarint(dst, u.Filesize)
	}
	for _, s := range u.Blocksizes {
		dst = append(dst, tag(fieldBlocksizes, protowire.VarintType))
		dst = protowire.AppendVarint(dst, s)
	}
	if u.Has&HasHashType != 0 {
		dst = append(dst, tag(fieldHashType, protowire.VarintType))
		dst = protowire.AppendVarint(dst, u.HashType)
	}
	if u.Has&HasFanout != 0 {
		dst = append(dst, tag(fieldFanout, protowire.VarintType))
		dst = protowire.AppendVarint(dst, u.Fanout)
	}
	if u.Has&HasMode != 0 {
		dst = append(dst, tag(fieldMode, protowire.VarintType))
		dst = protowire.AppendVarint(dst, uint64(u.Mode))
	}
	if u.Has&HasMtime != 0 {
		dst = append(dst, tag(fieldMtime, protowire.BytesType))
		dst = protowire.AppendVarint(dst, uint64(mtimeLen(u)))
		dst = append(dst, tag(timeSeconds, protowire.VarintType))
		dst = protowire.AppendVarint(dst, uint64(u.MtimeSeconds))
		if u.Has&HasMtimeNanos != 0 {
			dst = append(dst, tag(timeNanos, protowire.Fixed32Type))
			dst = protowire.AppendFixed32(dst, u.MtimeNanos)
		}
	}
	return dst
}

// LeafTailLen is the length of the fields after Data (AppendLeafTail) in
// a leaf of size bytes of type t holding n bytes of data; ok is false
// when no such leaf has that size.
func LeafTailLen(size int, t pb.Data_DataType, n int) (tailLen int, ok bool) {
	var buf [40]byte
	head := len(AppendLeafHead(buf[:0], t, n, 0))
	// The head's length field grows with the tail: try each width.
	for extra := range binary.MaxVarintLen64 {
		tailLen = size - head - extra - n
		if tailLen >= 0 && len(AppendLeafHead(buf[:0], t, n, tailLen)) == head+extra {
			return tailLen, true
		}
	}
	return 0, false
}

// leafTailLen is the length AppendLeafTail appends.
func leafTailLen(u *UnixFS) int {
	n := 0
	if u.Has&HasFilesize != 0 {
		n += 1 + protowire.SizeVarint(u.Filesize)
	}
	for _, s := range u.Blocksizes {
		n += 1 + protowire.SizeVarint(s)
	}
	if u.Has&HasHashType != 0 {
		n += 1 + protowire.SizeVarint(u.HashType)
	}
	if u.Has&HasFanout != 0 {
		n += 1 + protowire.SizeVarint(u.Fanout)
	}
	if u.Has&HasMode != 0 {
		n += 1 + protowire.SizeVarint(uint64(u.Mode))
	}
	if u.Has&HasMtime != 0 {
		n += 1 + protowire.SizeBytes(mtimeLen(u))
	}
	return n
}

// mtimeLen is the length of u's IPFSTimestamp message.
func mtimeLen(u *UnixFS) int {
	n := 1 + protowire.SizeVarint(uint64(u.MtimeSeconds))
	if u.Has&HasMtimeNanos != 0 {
		n += 1 + 4
	}
	return n
}

// typeVarint is t as protobuf writes an enum: its int64 value's bits.
func typeVarint(t pb.Data_DataType) uint64 { return uint64(int64(t)) }
