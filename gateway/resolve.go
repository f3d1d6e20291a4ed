package gateway

import (
	"context"
	"errors"
	"math/bits"
	"strings"
	"sync"
	"unsafe"

	pb "github.com/ipfs/boxo/ipld/unixfs/pb"
	"github.com/ipfs/boxo/path"
	"github.com/ipfs/go-cid"
	"github.com/spaolacci/murmur3"

	"github.com/ipfs-sync/ipfs-sync/internal/dagpb"
)

// errNotHere means a path is not one resolve follows (a segment it does
// not find, a node that is not a UnixFS directory): boxo resolves it, and
// answers as it does.
var errNotHere = errors.New("not a path through UnixFS directories")

// resolver follows /ipfs/ paths through UnixFS directories, plain or
// HAMT-sharded, keeping the directories it read (dirs). boxo resolves
// each prefix of a path again from the root, decoding every directory on
// the way into IPLD nodes: for a file four directories deep, ten
// directory blocks read and decoded per request, which was most of
// serve's CPU on a mirror of small files. A directory's links are what
// its CID says they are, so they are kept as long as there is room.
type resolver struct {
	rd BlockReader

	mu    sync.Mutex
	dirs  map[cid.Cid]dirBlock
	links int // held in dirs
}

// maxDirLinks bounds the links a resolver keeps (about 150 bytes each);
// when full, it forgets them all and starts again.
const maxDirLinks = 1 << 17

func newResolver(rd BlockReader) *resolver {
	return &resolver{rd: rd, dirs: map[cid.Cid]dirBlock{}}
}

// resolve follows the path p; it returns the CIDs of the path's segments
// but the last (boxo's PathSegmentRoots), the last one's CID and its
// block, read into buf (or a new buffer when buf has too little room).
func (r *resolver) resolve(ctx context.Context, p path.ImmutablePath, buf []byte) (roots []cid.Cid, last cid.Cid, raw []byte, err error) {
	if p.Namespace() != path.IPFSNamespace {
		return nil, cid.Undef, nil, errNotHere
	}
	_, rest, _ := strings.Cut(p.String()[len("/ipfs/"):], "/")
	return r.walk(ctx, p.RootCid(), rest, buf)
}

// walk is resolve for the path rest (segments split by "/") under root.
func (r *resolver) walk(ctx context.Context, root cid.Cid, rest string, buf []byte) (roots []cid.Cid, last cid.Cid, raw []byte, err error) {
	cur := root
	for rest != "" {
		var seg string
		seg, rest, _ = strings.Cut(rest, "/")
		if seg == "" {
			continue
		}
		if seg == "." || seg == ".." {
			return nil, cid.Undef, nil, errNotHere
		}
		next, err := r.lookup(ctx, cur, seg, buf)
		if err != nil {
			return nil, cid.Undef, nil, err
		}
		roots = append(roots, cur)
		cur = next
	}
	raw, err = r.rd.ReadBlock(ctx, cur, buf)
	if err != nil {
		return nil, cid.Undef, nil, err
	}
	return roots, cur, raw, nil
}

// lookup finds the entry called name in the directory c, as boxo's HAMT
// does in a sharded one: at each level the next log2(fanout) bits of the
// name's murmur3-64 hash, from the top, pick a slot; a link named by the
// slot alone (in hex, padded to the width of fanout-1) is a shard one
// level down, one named slot+name the entry. buf is for blocks read.
func (r *resolver) lookup(ctx context.Context, c cid.Cid, name string, buf []byte) (cid.Cid, error) {
	var hash uint64
	var keyBuf [128]byte
	key := keyBuf[:0]
	for depth := 0; ; depth++ {
		d, err := r.dir(ctx, c, buf)
		if err != nil {
			return cid.Undef, err
		}
		if d.fanout == 0 {
			if next, ok := d.links[name]; ok {
				return next, nil
			}
			return cid.Undef, errNotHere
		}
		if depth == 0 {
			hash = murmur3.Sum64(unsafe.Slice(unsafe.StringData(name), len(name)))
		}
		width := bits.TrailingZeros64(d.fanout)
		if (depth+1)*width > 64 {
			return cid.Undef, errNotHere
		}
		// The slot in upper-case hex, as wide as fanout-1's, then the
		// name: built in key, which a map index by string(key) does not
		// copy.
		slot := (hash >> (64 - (depth+1)*width)) & (d.fanout - 1)
		digits := (width + 3) / 4
		key = append(key[:0], make([]byte, digits)...)
		for i := digits - 1; i >= 0; i-- {
			key[i] = "0123456789ABCDEF"[slot&0xF]
			slot >>= 4
		}
		key = append(key, name...)
		if next, ok := d.links[string(key)]; ok {
			return next, nil
		}
		if c = d.links[string(key[:digits])]; !c.Defined() {
			return cid.Undef, errNotHere
		}
	}
}

// dirBlock is a directory block's links by name, its HAMT fanout (0: a
// plain directory), and its CID as text: every response through it names
// it (X-Ipfs-Roots), and encoding it anew each time took three
// allocations (12 of the 56 of a response for a file three deep).
type dirBlock struct {
	links  map[string]cid.Cid
	fanout uint64
	text   string
}

// text is c as text, kept if c is a directory the resolver read.
func (r *resolver) text(c cid.Cid) string {
	r.mu.Lock()
	d, ok := r.dirs[c]
	r.mu.Unlock()
	if ok {
		return d.text
	}
	return c.String()
}

// dir reads the directory block c, or finds it kept.
func (r *resolver) dir(ctx context.Context, c cid.Cid, buf []byte) (dirBlock, error) {
	r.mu.Lock()
	d, ok := r.dirs[c]
	r.mu.Unlock()
	if ok {
		return d, nil
	}
	if c.Prefix().Codec != cid.DagProtobuf {
		return dirBlock{}, errNotHere
	}
	raw, err := r.rd.ReadBlock(ctx, c, buf)
	if err != nil {
		return dirBlock{}, err
	}
	d.links = map[string]cid.Cid{}
	data, err := dagpb.DecodeNode(raw, func(name string, c cid.Cid, _ uint64) {
		if _, dup := d.links[name]; !dup {
			d.links[name] = c
		}
	})
	if err != nil {
		return dirBlock{}, errNotHere
	}
	u, err := dagpb.DecodeUnixFS(data)
	switch {
	case err != nil:
		return dirBlock{}, errNotHere
	case u.Type == pb.Data_Directory:
	case u.Type == pb.Data_HAMTShard && u.HashType == murmur3Code && u.Fanout >= 8 && u.Fanout <= 1024 && u.Fanout&(u.Fanout-1) == 0:
		d.fanout = u.Fanout
	default:
		return dirBlock{}, errNotHere
	}
	d.text = c.String()
	r.mu.Lock()
	if r.links+len(d.links) > maxDirLinks {
		r.dirs, r.links = map[cid.Cid]dirBlock{}, 0
	}
	r.dirs[c] = d
	r.links += len(d.links)
	r.mu.Unlock()
	return d, nil
}

// murmur3Code is murmur3-x64-64's multicodec, the hash of UnixFS HAMTs.
const murmur3Code = 0x22
