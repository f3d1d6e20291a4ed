package dagpb

import (
	"errors"
	"fmt"
	"math"

	pb "github.com/ipfs/boxo/ipld/unixfs/pb"
	"github.com/ipfs/go-cid"
	"google.golang.org/protobuf/encoding/protowire"
)

// The decoder reads nodes in the canonical form boxo writes and nothing
// else: a field out of order, repeated, unknown or of the wrong wire
// type is an error, though boxo's decoders take some such nodes. A caller
// that must read those as boxo does falls back to boxo on an error;
// whatever is read here, boxo reads the same way (the fuzz tests).

// DecodeNode reads a dag-pb node: its links, in order (each Hash, then
// Name and Tsize if present), then at most one Data field, returned as
// a subslice of raw (nil when absent). link is called for each link; the
// names are substrings of one copy of raw, made for all of them.
func DecodeNode(raw []byte, link func(name string, c cid.Cid, tsize uint64)) (data []byte, err error) {
	var s string
	for i := 0; i < len(raw); {
		num, typ, n := protowire.ConsumeTag(raw[i:])
		if n < 0 || typ != protowire.BytesType {
			return nil, fmt.Errorf("dag-pb: bad field at byte %d", i)
		}
		body, m := protowire.ConsumeBytes(raw[i+n:])
		if m < 0 {
			return nil, fmt.Errorf("dag-pb: field %d at byte %d: %w", num, i, protowire.ParseError(m))
		}
		start := i + n + m - len(body)
		i += n + m
		switch {
		case num == nodeLinks && data == nil:
			if s == "" {
				s = string(raw)
			}
			name, c, tsize, err := decodeLink(raw[:i], s, start)
			if err != nil {
				return nil, fmt.Errorf("dag-pb: link at byte %d: %w", start, err)
			}
			link(name, c, tsize)
		case num == nodeData && data == nil:
			data = body
		default:
			return nil, fmt.Errorf("dag-pb: field %d out of place at byte %d", num, start)
		}
	}
	return data, nil
}

// decodeLink reads the link in raw[start:], whose bytes are s's.
func decodeLink(raw []byte, s string, start int) (name string, c cid.Cid, tsize uint64, err error) {
	last := protowire.Number(0)
	for i := start; i < len(raw); {
		num, typ, n := protowire.ConsumeTag(raw[i:])
		if n < 0 || num <= last {
			return "", cid.Undef, 0, errors.New("field out of order")
		}
		i += n
		switch {
		case num == linkHash && typ == protowire.BytesType, num == linkName && typ == protowire.BytesType:
			b, m := protowire.ConsumeBytes(raw[i:])
			if m < 0 {
				return "", cid.Undef, 0, protowire.ParseError(m)
			}
			at := i + m - len(b)
			if num == linkHash {
				if c, err = cid.Cast(b); err != nil {
					return "", cid.Undef, 0, err
				}
			} else {
				name = s[at : at+len(b)]
			}
			i += m
		case num == linkTsize && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(raw[i:])
			if m < 0 {
				return "", cid.Undef, 0, protowire.ParseError(m)
			}
			tsize = v
			i += m
		default:
			return "", cid.Undef, 0, fmt.Errorf("unexpected field %d", num)
		}
		if last == 0 && num != linkHash {
			return "", cid.Undef, 0, errors.New("no Hash")
		}
		last = num
	}
	if last == 0 {
		return "", cid.Undef, 0, errors.New("no Hash")
	}
	return name, c, tsize, nil
}

// DecodeUnixFS reads a UnixFS Data message whose fields come in field
// order, each once (Blocksizes one after another), as boxo writes them.
// Data is a subslice of data.
func DecodeUnixFS(data []byte) (UnixFS, error) {
	var u UnixFS
	last := protowire.Number(0)
	haveType := false // it is required
	for i := 0; i < len(data); {
		num, typ, n := protowire.ConsumeTag(data[i:])
		if n < 0 || num < last || (num == last && num != fieldBlocksizes) {
			return UnixFS{}, fmt.Errorf("UnixFS: field out of order at byte %d", i)
		}
		i += n
		want := protowire.VarintType
		if num == fieldData || num == fieldMtime {
			want = protowire.BytesType
		}
		if typ != want || num < fieldType || num > fieldMtime {
			return UnixFS{}, fmt.Errorf("UnixFS: unexpected field %d of wire type %d", num, typ)
		}
		if want == protowire.BytesType {
			b, m := protowire.ConsumeBytes(data[i:])
			if m < 0 {
				return UnixFS{}, fmt.Errorf("UnixFS: field %d: %w", num, protowire.ParseError(m))
			}
			i += m
			if num == fieldData {
				u.Data = b
			} else if err := decodeMtime(b, &u); err != nil {
				return UnixFS{}, err
			}
			last = num
			continue
		}
		v, m := protowire.ConsumeVarint(data[i:])
		if m < 0 {
			return UnixFS{}, fmt.Errorf("UnixFS: field %d: %w", num, protowire.ParseError(m))
		}
		i += m
		switch num {
		case fieldType:
			if v > uint64(pb.Data_HAMTShard) {
				return UnixFS{}, fmt.Errorf("UnixFS: unknown type %d", v)
			}
			u.Type, haveType = pb.Data_DataType(v), true
		case fieldFilesize:
			u.Filesize, u.Has = v, u.Has|HasFilesize
		case fieldBlocksizes:
			u.Blocksizes = append(u.Blocksizes, v)
		case fieldHashType:
			u.HashType, u.Has = v, u.Has|HasHashType
		case fieldFanout:
			u.Fanout, u.Has = v, u.Has|HasFanout
		case fieldMode:
			if v > math.MaxUint32 {
				return UnixFS{}, fmt.Errorf("UnixFS: mode %d out of range", v)
			}
			u.Mode, u.Has = uint32(v), u.Has|HasMode
		}
		last = num
	}
	if !haveType {
		return UnixFS{}, errors.New("UnixFS: no Type")
	}
	return u, nil
}

// decodeMtime reads an IPFSTimestamp: seconds, then nanoseconds if
// present.
func decodeMtime(b []byte, u *UnixFS) error {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != timeSeconds || typ != protowire.VarintType {
		return errors.New("UnixFS: mtime without seconds")
	}
	v, m := protowire.ConsumeVarint(b[n:])
	if m < 0 {
		return fmt.Errorf("UnixFS: mtime: %w", protowire.ParseError(m))
	}
	u.MtimeSeconds, u.Has = int64(v), u.Has|HasMtime
	b = b[n+m:]
	if len(b) == 0 {
		return nil
	}
	num, typ, n = protowire.ConsumeTag(b)
	if n < 0 || num != timeNanos || typ != protowire.Fixed32Type {
		return errors.New("UnixFS: unexpected field in mtime")
	}
	ns, m := protowire.ConsumeFixed32(b[n:])
	if m < 0 || n+m != len(b) {
		return errors.New("UnixFS: unexpected field in mtime")
	}
	u.MtimeNanos, u.Has = ns, u.Has|HasMtimeNanos
	return nil
}
