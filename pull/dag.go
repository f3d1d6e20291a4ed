package pull

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ipfs/boxo/files"
	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"google.golang.org/protobuf/encoding/protowire"
)

// kind is what a UnixFS root node is.
type kind uint8

const (
	kindFile kind = iota + 1
	kindDir
	kindSymlink
)

func (k kind) String() string {
	switch k {
	case kindFile:
		return "file"
	case kindDir:
		return "directory"
	}
	return "symlink"
}

// decodeEntry reads an entry's root block: its dag-pb node and UnixFS data
// (both nil for a raw block, which is a whole file) and its kind.
func decodeEntry(b blocks.Block) (*mdag.ProtoNode, *ft.FSNode, kind, error) {
	switch b.Cid().Prefix().Codec {
	case cid.Raw:
		return nil, nil, kindFile, nil
	case cid.DagProtobuf:
	default:
		return nil, nil, 0, fmt.Errorf("block %s: codec %#x is not UnixFS", b.Cid(), b.Cid().Prefix().Codec)
	}
	nd, err := mdag.DecodeProtobuf(b.RawData())
	if err != nil {
		return nil, nil, 0, fmt.Errorf("block %s: %w", b.Cid(), err)
	}
	fsn, err := ft.FSNodeFromBytes(withoutFileData(nd.Data()))
	if err != nil {
		return nil, nil, 0, fmt.Errorf("block %s: not UnixFS: %w", b.Cid(), err)
	}
	switch fsn.Type() {
	case ft.TFile, ft.TRaw:
		return nd, fsn, kindFile, nil
	case ft.TDirectory, ft.THAMTShard:
		return nd, fsn, kindDir, nil
	case ft.TSymlink:
		return nd, fsn, kindSymlink, nil
	}
	return nil, nil, 0, fmt.Errorf("block %s: UnixFS type %s cannot be written to disk", b.Cid(), fsn.Type())
}

// withoutFileData is the UnixFS message msg without its Data field if it
// is a file's (Type File or Raw), else msg. boxo's decoder copies the
// Data field, a small file's every byte, for nothing: a file's data is
// read from its block when it is written (visit). A message that does not
// parse is left whole, for boxo's decoder to refuse.
func withoutFileData(msg []byte) []byte {
	var typ uint64
	start, end := -1, -1
	for i := 0; i < len(msg); {
		num, wt, n := protowire.ConsumeField(msg[i:])
		if n < 0 {
			return msg
		}
		switch num {
		case 1:
			v, m := protowire.ConsumeVarint(msg[i+protowire.SizeTag(num):])
			if wt != protowire.VarintType || m < 0 {
				return msg
			}
			typ = v
		case 2:
			if start >= 0 {
				return msg // twice: boxo's decoder says what that means
			}
			start, end = i, i+n
		}
		i += n
	}
	if start < 0 || (typ != uint64(ft.TFile) && typ != uint64(ft.TRaw)) {
		return msg
	}
	return append(msg[:start:start], msg[end:]...)
}

// meta is the mode and mtime a node stores, in lstat's terms.
type meta struct {
	hasMode, hasMTime bool
	mode              uint32
	mtime             int64
}

func metaOf(fsn *ft.FSNode) meta {
	if fsn == nil {
		return meta{}
	}
	var m meta
	if mode := fsn.Mode(); mode != 0 || fsn.ExtendedMode() != 0 {
		m.hasMode, m.mode = true, unixPerms(mode)
	}
	if t := fsn.ModTime(); !t.IsZero() {
		m.hasMTime, m.mtime = true, nsOf(t)
	}
	return m
}

// metaOf is what fsn stores, as this run applies it: without
// PreserveSpecialBits, no setuid, setgid or sticky bit.
func (p *puller) metaOf(fsn *ft.FSNode) meta {
	m := metaOf(fsn)
	if !p.o.PreserveSpecialBits {
		m.mode &^= 0o7000
	}
	return m
}

// vouches reports whether a file's record, which matches lstat, may stand
// for its mode under this run's rule for special bits: without them, a
// record that has one is from a run that kept them; with them, a record
// of a run that left them out may lack one the root stores.
func (p *puller) vouches(rec *entry) bool {
	if p.o.PreserveSpecialBits {
		return !p.recheck
	}
	return unixPerms(rec.Local.Mode)&0o7000 == 0
}

// unixPerms converts Go's mode bits to the permission, setuid, setgid and
// sticky bits of chmod(2).
func unixPerms(m os.FileMode) uint32 { return files.ModePermsToUnixPerms(m) & 0o7777 }

// block gets the block c: inline for an identity CID, from the cache of
// structure blocks, else from the source (bounded by p.fetches).
func (p *puller) block(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if b, ok, err := identity(c); ok {
		return b, err
	}
	if data, ok := p.st.block(c); ok {
		return blocks.NewBlockWithCid(data, c)
	}
	if data, ok := p.pre.take(c); ok {
		return blocks.NewBlockWithCid(data, c)
	}
	select {
	case p.fetches <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-p.fetches }()
	return p.src.Block(ctx, c)
}

// link is one entry of a directory.
type link struct {
	Name  string
	Cid   cid.Cid
	Tsize uint64
}

// checkName accepts a link name only if it is one path component that can
// be created in a directory.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case name == "." || name == "..":
		return errors.New("not a file name")
	case strings.ContainsRune(name, '/'):
		return errors.New("name contains '/'")
	case strings.ContainsRune(name, 0):
		return errors.New("name contains NUL")
	case len(name) > 255:
		return errors.New("name longer than 255 bytes")
	}
	return nil
}
