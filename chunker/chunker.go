// Package chunker owns turning one regular file into a UnixFS file DAG: it
// opens the file safely, splits it with the profile's chunker, lays it out
// with boxo's balanced or trickle builder, and checks that the file did not
// change while it was read. It is the only user of boxo's importer.
package chunker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	"github.com/ipfs/boxo/ipld/unixfs/importer/trickle"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/zeebo/xxh3"

	"github.com/ipfs-sync/ipfs-sync/metadata"
	"github.com/ipfs-sync/ipfs-sync/profile"
)

// ErrChanged means a file kept changing while it was read.
var ErrChanged = errors.New("file changed while it was read")

// ErrNotRegular means the path no longer names a regular file.
var ErrNotRegular = errors.New("not a regular file any more")

// ErrReplaced means another file than the one listed stands at the name
// (another device or inode): a change, read once more as the file now
// there, as ErrChanged is.
var ErrReplaced = fmt.Errorf("replaced since it was listed: %w", ErrChanged)

// Result is one imported file.
type Result struct {
	Cid   cid.Cid
	Tsize uint64        // cumulative DAG size, as a directory link records it
	Stat  metadata.Stat // what was stored: the stat of the handle that was read
	Read  int64         // bytes read, retries included
	// XXH is the xxh3-64 of the content (see countingReader); 0 (not
	// known) for a NoCopy source: nothing compares a referenced file by
	// its content hash (the index vouches for it by its identity, and
	// --checksum and a copying run read it again), and hashing every
	// byte once more was ~3 % of a --nocopy import's CPU.
	XXH uint64
	// Dev and Ino are the file's that was read (its Source's, or the
	// one at its name after ErrReplaced); CTime its change time, as its
	// leaves' references (Source.NoCopy) name it.
	Dev, Ino uint64
	CTime    int64
}

// Importer turns files into DAGs written to DAG.
type Importer struct {
	Profile profile.Profile
	DAG     ipld.DAGService
	// Open opens a file for reading (OpenAt when nil); tests wrap it to
	// count opens or to fail or change files mid-read.
	Open func(Source) (File, error)
	// OnRead, if set, is told of every read (progress reporting).
	OnRead func(n int)
	// OnSize, if set, is told the size of each file opened whose Source
	// did not know it (NoLstat), as it is opened (progress reporting).
	OnSize func(n int64)

	builders sync.Pool // leafBuilders of the fast balanced builder, each with its chunk buffer
	hashers  sync.Pool // xxh3 hashers of the files' content: ~1.2 KB each, one per file

	mhOnce sync.Once
	mhLen  int // of the profile's multihashes; 0: not known
}

// multihashLen is the length of the profile's multihashes, found once.
func (im *Importer) multihashLen() int {
	im.mhOnce.Do(func() {
		if c, err := im.Profile.Prefix().Sum(nil); err == nil {
			im.mhLen = len(c.Hash())
		}
	})
	return im.mhLen
}

// File imports the regular file s. A file whose size or mtime changes
// while it is read, or that is not the one listed (ErrReplaced), is read
// once more, as the file now at its name; if it changes again the result
// is ErrChanged, so a wrong CID is never recorded for a path.
func (im *Importer) File(ctx context.Context, s Source) (Result, error) {
	var read int64
	for attempt := 0; ; attempt++ {
		res, err := im.once(ctx, s)
		read += res.Read
		res.Read = read
		if errors.Is(err, ErrChanged) && attempt == 0 {
			if errors.Is(err, ErrReplaced) {
				if s, err = s.relisted(); err != nil {
					return res, fmt.Errorf("%s: %w", s.Path, err)
				}
			}
			continue
		}
		if err != nil {
			return res, fmt.Errorf("%s: %w", s.Path, err)
		}
		return res, nil
	}
}

func (im *Importer) open(s Source) (File, error) {
	if im.Open != nil {
		return im.Open(s)
	}
	return OpenAt(s)
}

func (im *Importer) once(ctx context.Context, s Source) (Result, error) {
	f, err := im.open(s)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return Result{}, err
	}
	if before.Type != metadata.File {
		return Result{}, ErrNotRegular
	}
	if s, err = identified(s, f); err != nil {
		return Result{}, err
	}
	if s.NoLstat && im.OnSize != nil {
		im.OnSize(before.Size)
	}
	if ct, ok := f.(interface{ ChangeTime() int64 }); ok && s.NoCopy {
		s.CTime = ct.ChangeTime()
	}
	cr := &countingReader{r: f, ctx: ctx, on: im.OnRead}
	if !s.NoCopy {
		h, _ := im.hashers.Get().(*xxh3.Hasher)
		if h == nil {
			h = xxh3.New()
		}
		h.Reset()
		defer im.hashers.Put(h)
		cr.h = h
	}
	c, tsize, err := im.layout(ctx, cr, before, s)
	if err != nil {
		return Result{Read: cr.n}, err
	}
	after, err := f.Stat()
	if err != nil {
		return Result{Read: cr.n}, err
	}
	if !metadata.Same(before, after) || cr.n != before.Size {
		return Result{Read: cr.n}, ErrChanged
	}
	res := Result{Cid: c, Tsize: tsize, Stat: before, Read: cr.n, Dev: s.Dev, Ino: s.Ino, CTime: s.CTime}
	if cr.h != nil {
		res.XXH = cr.h.Sum64()
	}
	return res, nil
}

// Checksum reads the file s and returns the xxh3-64 of its content and
// the stat of the handle read, for --checksum's content comparison.
func (im *Importer) Checksum(ctx context.Context, s Source) (uint64, metadata.Stat, int64, error) {
	f, err := im.open(s)
	if err != nil {
		return 0, metadata.Stat{}, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, metadata.Stat{}, 0, err
	}
	h := xxh3.New()
	n, err := io.Copy(h, &countingReader{r: f, ctx: ctx, on: im.OnRead})
	if err != nil {
		return 0, st, n, fmt.Errorf("%s: %w", s.Path, err)
	}
	return h.Sum64(), st, n, nil
}

// Reroot gives a stored file new metadata without reading its data: the
// root node keeps its links and blocksizes and gets st's mode and mtime,
// exactly as the importer would have set them (boxo's SetFileAttributes).
func (im *Importer) Reroot(ctx context.Context, old ipld.Node, st metadata.Stat) (Result, error) {
	pn, ok := old.(*mdag.ProtoNode)
	if !ok {
		return Result{}, fmt.Errorf("file root %s is not dag-pb; cannot carry metadata", old.Cid())
	}
	fsn, err := ft.FSNodeFromBytes(pn.Data())
	if err != nil {
		return Result{}, fmt.Errorf("file root %s: %w", old.Cid(), err)
	}
	fields := metadata.Fields{Mode: im.Profile.PreserveMode, MTime: im.Profile.PreserveMTime}
	fsn.SetModTime(fields.MTimeOf(st))
	fsn.SetMode(fields.ModeOf(st))
	data, err := fsn.GetBytes()
	if err != nil {
		return Result{}, err
	}
	nd := pn.Copy().(*mdag.ProtoNode)
	nd.SetData(data)
	if err := nd.SetCidBuilder(im.Profile.CidBuilder()); err != nil {
		return Result{}, err
	}
	if err := im.DAG.Add(ctx, nd); err != nil {
		return Result{}, err
	}
	return Result{Cid: nd.Cid(), Tsize: mustSize(nd), Stat: st}, nil
}

// layout builds and stores the file DAG of r's bytes, read from src, with
// st's metadata as the profile stores it, and returns its root and Tsize.
func (im *Importer) layout(ctx context.Context, r io.Reader, st metadata.Stat, src Source) (cid.Cid, uint64, error) {
	if bp, ok := im.fastLayout(); ok {
		return im.fastBalanced(ctx, bp, r, st, src)
	}
	nd, err := im.boxoLayout(r, st)
	if err != nil {
		return cid.Undef, 0, err
	}
	return nd.Cid(), mustSize(nd), nil
}

// boxoLayout builds the file DAG with boxo's builders.
func (im *Importer) boxoLayout(r io.Reader, st metadata.Stat) (ipld.Node, error) {
	spl, err := im.Profile.Splitter(r)
	if err != nil {
		return nil, err
	}
	fields := metadata.Fields{Mode: im.Profile.PreserveMode, MTime: im.Profile.PreserveMTime}
	params := helpers.DagBuilderParams{
		Dagserv:     im.DAG,
		RawLeaves:   im.Profile.RawLeaves,
		Maxlinks:    im.Profile.FileDAGWidth,
		CidBuilder:  im.Profile.CidBuilder(),
		FileMode:    fields.ModeOf(st),
		FileModTime: fields.MTimeOf(st),
	}
	db, err := params.New(spl)
	if err != nil {
		return nil, err
	}
	if im.Profile.Trickle {
		return trickle.Layout(db)
	}
	return balanced.Layout(db)
}

func mustSize(nd ipld.Node) uint64 {
	s, err := nd.Size()
	if err != nil {
		// Size only fails for nodes that cannot encode, which Layout never returns.
		panic(err)
	}
	return s
}

// countingReader counts what it reads and, with h, hashes it for the
// index's content check (--checksum, a file whose mtime moved). xxh3, not
// the xxhash64 used elsewhere: every imported byte goes through it, and
// xxh3 (SIMD) runs at ~60 GB/s on a core where xxhash64 runs at ~13, a
// twentieth of a full import's CPU (docs/benchmarks.md#decisions).
type countingReader struct {
	r   io.Reader
	n   int64
	ctx context.Context
	h   *xxh3.Hasher // optional
	on  func(int)    // optional
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.h != nil {
		c.h.Write(p[:n])
	}
	if c.on != nil && n > 0 {
		c.on(n)
	}
	return n, err
}
