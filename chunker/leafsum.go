package chunker

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-cidutil"
	mh "github.com/multiformats/go-multihash"
)

// leafSum makes leaves' CIDs as the profile's cid.Builder does. Why not
// the builder itself: cid.Prefix.Sum looks the hash up in multihash's
// registry and allocates a hash state, a digest, a multihash and the CID
// for every block, which on a tree of small files is most of what a file
// allocates. Here a full-length SHA-256, the hash of every profile, keeps
// one state and writes the CID's bytes in place: the CID's own string is
// the only allocation. Any other hash, and a block small enough to be
// inlined, goes to the builder.
type leafSum struct {
	b      cid.Builder
	inline int       // blocks up to this many bytes are identity CIDs (0: none)
	h      hash.Hash // nil: every block goes to b
	head   []byte    // the CID's bytes before the digest
	out    [80]byte
}

func newLeafSum(b cid.Builder, codec uint64) *leafSum {
	b = b.WithCodec(codec)
	s := &leafSum{b: b}
	p, ok := b.(cid.Prefix)
	if ib, inl := b.(cidutil.InlineBuilder); inl {
		p, ok = ib.Builder.(cid.Prefix)
		s.inline = ib.Limit
	}
	if !ok || p.MhType != mh.SHA2_256 || (p.MhLength != -1 && p.MhLength != sha256.Size) {
		return s
	}
	switch p.Version {
	case 0:
		s.head = []byte{mh.SHA2_256, sha256.Size}
	case 1:
		s.head = binary.AppendUvarint(nil, 1)
		s.head = binary.AppendUvarint(s.head, p.Codec)
		s.head = binary.AppendUvarint(s.head, mh.SHA2_256)
		s.head = binary.AppendUvarint(s.head, sha256.Size)
	default:
		return s
	}
	s.h = sha256.New()
	return s
}

// Sum is the CID of block.
func (s *leafSum) Sum(block []byte) (cid.Cid, error) {
	if s.h == nil || len(block) <= s.inline {
		return s.b.Sum(block)
	}
	s.h.Reset()
	s.h.Write(block)
	return cid.Cast(s.h.Sum(append(s.out[:0], s.head...)))
}
