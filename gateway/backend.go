package gateway

import (
	"context"
	"errors"
	"io"

	"github.com/ipfs/boxo/gateway"
	"github.com/ipfs/boxo/path"
)

// backend is boxo's BlocksBackend with UnixFS files read from the store
// directly: a GET or HEAD whose path leads through UnixFS directories to
// a file resolves it (resolver) and serves it through a fileReader; boxo's
// handler still makes every header, answers Range and conditional
// requests, and sniffs the Content-Type. Everything else (directories,
// symlinks, raw blocks, CARs, and any path or node resolve or openFile do
// not take, errors included) goes to BlocksBackend unchanged, so what
// boxo answers for those stays its answer.
type backend struct {
	*gateway.BlocksBackend
	rd  BlockReader
	res *resolver
}

func (b *backend) Get(ctx context.Context, p path.ImmutablePath, ranges ...gateway.ByteRange) (gateway.ContentPathMetadata, *gateway.GetResponse, error) {
	md, f, err := b.file(ctx, p)
	if err == nil && len(ranges) > 0 {
		err = seekToRange(f, ranges[0])
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return b.BlocksBackend.Get(ctx, p, ranges...)
	}
	return md, gateway.NewGetResponseFromReader(f, f.size), nil
}

func (b *backend) Head(ctx context.Context, p path.ImmutablePath) (gateway.ContentPathMetadata, *gateway.HeadResponse, error) {
	md, f, err := b.file(ctx, p)
	if err != nil {
		return b.BlocksBackend.Head(ctx, p)
	}
	return md, gateway.NewHeadResponseForFile(f, f.size), nil
}

// file opens the file at p with the metadata BlocksBackend gives it.
func (b *backend) file(ctx context.Context, p path.ImmutablePath) (gateway.ContentPathMetadata, *fileReader, error) {
	buf := leafBufs.Get().(*[]byte)
	roots, last, raw, err := b.res.resolve(ctx, p, (*buf)[:0])
	if err != nil {
		leafBufs.Put(buf)
		return gateway.ContentPathMetadata{}, nil, err
	}
	if cap(raw) > cap(*buf) {
		*buf = raw[:0]
	}
	f, u, err := openFile(ctx, b.rd, last, raw, buf)
	if err != nil {
		leafBufs.Put(buf)
		return gateway.ContentPathMetadata{}, nil, err
	}
	md := gateway.ContentPathMetadata{
		PathSegmentRoots: roots,
		LastSegment:      path.FromCid(last),
		ModTime:          u.ModTime(),
	}
	if len(p.Segments()) > 2 {
		// boxo's resolver gives an empty remainder for a path it followed
		// to the end, none for a bare CID.
		md.LastSegmentRemainder = []string{}
	}
	return md, f, nil
}

// seekToRange moves f to the start of the range, as boxo's BlocksBackend
// does before it hands a file to the handler: the handler sends from
// where the reader is.
func seekToRange(f *fileReader, ra gateway.ByteRange) error {
	start := ra.From
	switch {
	case ra.From == 0:
		return nil
	case ra.From < 0 && ra.To != nil:
		return errors.New("invalid range: negative start without a nil end")
	case ra.From < 0:
		if start = f.size + ra.From; start < 0 {
			return errors.New("invalid range: negative start bigger than the file size")
		}
	}
	_, err := f.Seek(start, io.SeekStart)
	return err
}
