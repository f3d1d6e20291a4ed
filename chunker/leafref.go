package chunker

import (
	"context"
	"time"

	"github.com/ipfs/go-cid"
)

// LeafReferrer is a DAG that can store a leaf as a reference to the
// bytes of the file it was read from (sync --nocopy) instead of a copy
// of them: the store keeps where the bytes are and the framing around
// them, and reads them back from the file.
type LeafReferrer interface {
	// PutLeafRef stores the leaf c, whose bytes are block (lent for the
	// call only, as PutBlock's), as a reference to at.
	PutLeafRef(ctx context.Context, c cid.Cid, block []byte, at LeafAt) error
}

// LeafAt is where a leaf's file bytes are and what frames them: the leaf
// is Head, then Len bytes of the file at Off, then Tail (a raw leaf has
// neither). The file is named by Path (the path the walk gave it) and
// known by its device, inode, size, mtime and change time when it was
// read: a file
// that differs in any of them later is not the one the leaf was read
// from; CTime (ns) catches a rewrite that kept size and mtime, and a
// chmod. Head and Tail are lent for the call.
type LeafAt struct {
	Path       string
	Dev, Ino   uint64
	Size       int64
	MTime      time.Time
	CTime      int64
	Off        int64
	Len        int
	Head, Tail []byte
}

// MinRefLen is the fewest file bytes a leaf references: a reference costs
// about as much as a copy of fewer, and a copy is never unavailable.
const MinRefLen = 512
