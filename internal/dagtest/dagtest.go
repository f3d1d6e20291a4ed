// Package dagtest builds small UnixFS DAGs block by block for the tests of
// packages that read DAGs but cannot import the sync engine that writes
// them (blockstore, export): raw and dag-pb leaves, files of chunks,
// directories of named entries, each link with the Tsize kubo records.
// Every block has a name, so that a test can say which blocks it expects.
package dagtest

import (
	"fmt"
	"maps"
	"slices"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// DAG holds the blocks made so far.
type DAG struct {
	blocks []blocks.Block
	names  map[cid.Cid]string
	sizes  map[cid.Cid]uint64 // file content under each block, for the file nodes above
}

// New starts an empty DAG.
func New() *DAG {
	return &DAG{names: map[cid.Cid]string{}, sizes: map[cid.Cid]uint64{}}
}

// Entries are a directory's links by name.
type Entries map[string]*ipld.Link

// Raw is a raw block of data: a leaf of a file imported with raw leaves,
// or a whole small file.
func (d *DAG) Raw(name, data string) *ipld.Link {
	nd := mdag.NewRawNode([]byte(data))
	return d.add(name, nd, uint64(len(data)))
}

// Identity is a raw CID that carries data inline: no block is stored.
func (d *DAG) Identity(data string) *ipld.Link {
	h, err := mh.Sum([]byte(data), mh.IDENTITY, -1)
	if err != nil {
		panic(err)
	}
	return &ipld.Link{Cid: cid.NewCidV1(cid.Raw, h), Size: uint64(len(data))}
}

// Leaf is a dag-pb file leaf of data: a leaf of a file imported with
// metadata (no raw leaves).
func (d *DAG) Leaf(name, data string) *ipld.Link {
	nd := mdag.NodeWithData(ft.FilePBData([]byte(data), uint64(len(data))))
	return d.add(name, v1(nd), uint64(len(data)))
}

// File is a file node whose chunks are chunks, in order.
func (d *DAG) File(name string, chunks ...*ipld.Link) *ipld.Link {
	fsn := ft.NewFSNode(ft.TFile)
	nd := &mdag.ProtoNode{}
	var size uint64
	for _, c := range chunks {
		n := d.contentSize(c)
		fsn.AddBlockSize(n)
		size += n
		if err := nd.AddRawLink("", c); err != nil {
			panic(err)
		}
	}
	data, err := fsn.GetBytes()
	if err != nil {
		panic(err)
	}
	nd.SetData(data)
	return d.add(name, v1(nd), size)
}

// Dir is a directory of entries, sorted by name as UnixFS stores them.
func (d *DAG) Dir(name string, entries Entries) *ipld.Link {
	nd := mdag.NodeWithData(ft.FolderPBData())
	for _, n := range slices.Sorted(maps.Keys(entries)) {
		if err := nd.AddRawLink(n, entries[n]); err != nil {
			panic(err)
		}
	}
	return d.add(name, v1(nd), 0)
}

// v1 gives nd the CIDs of the default profile, unixfs-v1-2025.
func v1(nd *mdag.ProtoNode) *mdag.ProtoNode {
	if err := nd.SetCidBuilder(cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256}); err != nil {
		panic(err)
	}
	return nd
}

// add records nd under name. Two names for one block would make a test's
// expectations ambiguous: a test that builds the same block twice must
// reuse its link.
func (d *DAG) add(name string, nd ipld.Node, content uint64) *ipld.Link {
	c := nd.Cid()
	if old, ok := d.names[c]; ok {
		panic(fmt.Sprintf("dagtest: %s is the same block as %s", name, old))
	}
	for _, n := range d.names {
		if n == name {
			panic(fmt.Sprintf("dagtest: two blocks named %s", name))
		}
	}
	tsize, err := nd.Size()
	if err != nil {
		panic(err)
	}
	d.names[c] = name
	d.sizes[c] = content
	d.blocks = append(d.blocks, nd)
	return &ipld.Link{Cid: c, Size: tsize}
}

func (d *DAG) contentSize(l *ipld.Link) uint64 {
	if l.Cid.Prefix().MhType == mh.IDENTITY {
		return l.Size
	}
	return d.sizes[l.Cid]
}

// Blocks is every block made, in the order made (children first).
func (d *DAG) Blocks() []blocks.Block { return slices.Clone(d.blocks) }

// Block is the block called name.
func (d *DAG) Block(name string) blocks.Block {
	for _, b := range d.blocks {
		if d.names[b.Cid()] == name {
			return b
		}
	}
	panic("dagtest: no block named " + name)
}

// Name is the name of the block c, or c itself when it is no block of d.
func (d *DAG) Name(c cid.Cid) string {
	if n, ok := d.names[c]; ok {
		return n
	}
	return c.String()
}

// Names is the sorted names of cs.
func (d *DAG) Names(cs []cid.Cid) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = d.Name(c)
	}
	slices.Sort(out)
	return out
}
