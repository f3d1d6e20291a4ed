package pull

import (
	"bytes"
	"crypto/sha256"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	unixfspb "github.com/ipfs/boxo/ipld/unixfs/pb"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/internal/dagpb"
)

// isLeaf reports whether data, as a file leaf, has the CID c: a raw block,
// or a dag-pb UnixFS node of type File (kubo's balanced layout) or Raw
// (trickle layout) holding data.
func isLeaf(c cid.Cid, data []byte) bool {
	pre := c.Prefix()
	if pre.Codec == cid.DagProtobuf && pre.MhType == mh.SHA2_256 {
		dm, err := mh.Decode(c.Hash())
		if err != nil {
			return false
		}
		for _, t := range []unixfspb.Data_DataType{ft.TFile, ft.TRaw} {
			if bytes.Equal(leafSHA256(t, data), dm.Digest) {
				return true
			}
		}
		return false
	}
	return isLeafEncoded(c, data)
}

// leafSHA256 hashes the dag-pb encoding of a UnixFS leaf of type t holding
// data, without building it: PBNode{Data: Data{Type, Data, filesize}},
// as boxo's importer (kubo's) writes leaves, is dagpb's leaf head, the
// data, and the filesize field as its tail.
func leafSHA256(t unixfspb.Data_DataType, data []byte) []byte {
	var hb, tb [24]byte
	tail := dagpb.AppendLeafTail(tb[:0], &dagpb.UnixFS{Type: t, Filesize: uint64(len(data)), Has: dagpb.HasFilesize})
	h := sha256.New()
	h.Write(dagpb.AppendLeafHead(hb[:0], t, len(data), len(tail)))
	h.Write(data)
	h.Write(tail)
	return h.Sum(nil)
}

// isLeafEncoded is isLeaf by building each candidate block: for any hash.
func isLeafEncoded(c cid.Cid, data []byte) bool {
	pre := c.Prefix()
	switch pre.Codec {
	case cid.Raw:
		got, err := pre.Sum(data)
		return err == nil && got.Equals(c)
	case cid.DagProtobuf:
		for _, t := range []unixfspb.Data_DataType{ft.TFile, ft.TRaw} {
			fsn := ft.NewFSNode(t)
			fsn.SetData(data)
			pb, err := fsn.GetBytes()
			if err != nil {
				return false
			}
			enc, err := mdag.NodeWithData(pb).EncodeProtobuf(false)
			if err != nil {
				return false
			}
			if got, err := pre.Sum(enc); err == nil && got.Equals(c) {
				return true
			}
		}
	}
	return false
}
