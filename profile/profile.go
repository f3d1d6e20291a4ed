// Package profile owns every setting that changes a CID: the IPIP-499
// UnixFS profile, kubo-style overrides on top of it, and which metadata
// (mode, mtime) is stored. A Profile is built once, validated, and passed
// down explicitly; nothing here touches boxo's process-wide globals.
package profile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	chunk "github.com/ipfs/boxo/chunker"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-cidutil"
	mh "github.com/multiformats/go-multihash"
)

// Names of the IPIP-499 profiles.
const (
	V1_2025 = "unixfs-v1-2025"
	V0_2015 = "unixfs-v0-2015"
)

// maxInlineLimit mirrors kubo's verifcid.DefaultMaxIdentityDigestSize: an
// identity CID larger than this is rejected by kubo and gateways.
const maxInlineLimit = 128

// Profile is the complete, explicit set of import parameters.
type Profile struct {
	Name           string
	CIDVersion     int
	MhType         uint64
	Chunker        string // boxo chunker spec, always explicit: size-N, rabin-MIN-AVG-MAX, buzhash
	RawLeaves      bool
	FileDAGWidth   int
	Trickle        bool
	InlineLimit    int // 0: no inlining
	HAMTThreshold  int // 0: never shard
	HAMTEstimation uio.SizeEstimationMode
	HAMTFanout     int
	PreserveMode   bool
	PreserveMTime  bool
}

// Overrides are kubo-named options applied on top of a named profile. A nil
// field leaves the profile's value.
type Overrides struct {
	CIDVersion     *int
	Hash           *string
	RawLeaves      *bool
	Chunker        *string
	MaxFileLinks   *int
	Trickle        *bool
	Inline         *bool
	InlineLimit    *int
	MaxHAMTFanout  *int
	HAMTThreshold  *int
	HAMTEstimation *string
	Metadata       *string
}

// Names lists the profiles New accepts.
func Names() []string { return []string{V1_2025, V0_2015} }

// New builds the named profile with overrides applied, using kubo's rules
// for how the options interact.
func New(name string, o Overrides) (Profile, error) {
	p, err := named(name)
	if err != nil {
		return Profile{}, err
	}
	// In this order: raw leaves depend on the metadata kept.
	for _, apply := range []func(*Profile, Overrides) error{applyMetadata, applyCID, applyLeaves, applyLayout, applyHAMT} {
		if err := apply(&p, o); err != nil {
			return Profile{}, err
		}
	}
	return p, p.Validate()
}

// named is the IPIP-499 profile called name ("": the newest), storing
// mode and mtime.
func named(name string) (Profile, error) {
	var base uio.UnixFSProfile
	switch name {
	case V1_2025, "":
		name, base = V1_2025, uio.UnixFS_v1_2025
	case V0_2015:
		base = uio.UnixFS_v0_2015
	default:
		return Profile{}, fmt.Errorf("unknown profile %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return Profile{
		Name:           name,
		CIDVersion:     base.CIDVersion,
		MhType:         base.MhType,
		Chunker:        "size-" + strconv.FormatInt(base.ChunkSize, 10),
		RawLeaves:      base.RawLeaves,
		FileDAGWidth:   base.FileDAGWidth,
		HAMTThreshold:  base.HAMTShardingSize,
		HAMTEstimation: base.HAMTSizeEstimation,
		HAMTFanout:     base.HAMTShardWidth,
		PreserveMode:   true,
		PreserveMTime:  true,
	}, nil
}

// applyMetadata applies --metadata.
func applyMetadata(p *Profile, o Overrides) error {
	if o.Metadata == nil {
		return nil
	}
	m, t, err := parseMetadata(*o.Metadata)
	if err != nil {
		return err
	}
	p.PreserveMode, p.PreserveMTime = m, t
	return nil
}

// applyCID applies --cid-version and --hash.
func applyCID(p *Profile, o Overrides) error {
	if o.CIDVersion != nil {
		if *o.CIDVersion != 0 && *o.CIDVersion != 1 {
			return fmt.Errorf("--cid-version must be 0 or 1, not %d", *o.CIDVersion)
		}
		// kubo's "CIDv1 automatically enables raw-leaves" applies only when
		// nothing set raw leaves; a profile always does, so it stays.
		p.CIDVersion = *o.CIDVersion
	}
	if o.Hash != nil {
		code, ok := mh.Names[*o.Hash]
		if !ok {
			return fmt.Errorf("unknown --hash %q", *o.Hash)
		}
		p.MhType = code
	}
	return nil
}

// applyLeaves applies --raw-leaves, after the metadata is known.
func applyLeaves(p *Profile, o Overrides) error {
	if o.RawLeaves != nil {
		p.RawLeaves = *o.RawLeaves
	}
	if p.PreserveMode || p.PreserveMTime {
		// kubo: metadata needs a dag-pb root, so raw leaves are turned off,
		// and an explicit request for them is an error.
		if o.RawLeaves != nil && *o.RawLeaves {
			return errors.New("--raw-leaves can't be used with UnixFS metadata (mode or mtime); use --metadata none or --raw-leaves=false")
		}
		p.RawLeaves = false
	}
	return nil
}

// applyLayout applies --chunker, --max-file-links, --trickle and --inline
// (with --inline-limit, which means nothing without it).
func applyLayout(p *Profile, o Overrides) error {
	if o.Chunker != nil {
		c, err := normaliseChunker(*o.Chunker, p.Chunker)
		if err != nil {
			return err
		}
		p.Chunker = c
	}
	if o.MaxFileLinks != nil {
		p.FileDAGWidth = *o.MaxFileLinks
	}
	if o.Trickle != nil {
		p.Trickle = *o.Trickle
	}
	if o.Inline != nil && *o.Inline {
		p.InlineLimit = 32 // kubo's default --inline-limit
		if o.InlineLimit != nil {
			p.InlineLimit = *o.InlineLimit
		}
	}
	return nil
}

// applyHAMT applies --max-hamt-fanout, --hamt-threshold and
// --hamt-estimation.
func applyHAMT(p *Profile, o Overrides) error {
	if o.MaxHAMTFanout != nil {
		p.HAMTFanout = *o.MaxHAMTFanout
	}
	if o.HAMTThreshold != nil {
		p.HAMTThreshold = *o.HAMTThreshold
	}
	if o.HAMTEstimation == nil {
		return nil
	}
	switch *o.HAMTEstimation {
	case "links":
		p.HAMTEstimation = uio.SizeEstimationLinks
	case "block":
		p.HAMTEstimation = uio.SizeEstimationBlock
	default:
		return fmt.Errorf("--hamt-estimation must be links or block, not %q", *o.HAMTEstimation)
	}
	return nil
}

// Validate reports settings that would give an invalid or unreadable DAG.
func (p Profile) Validate() error {
	switch {
	case p.CIDVersion == 0 && p.MhType != mh.SHA2_256:
		return errors.New("CIDv0 only supports sha2-256; add --cid-version 1")
	case p.CIDVersion == 0 && p.InlineLimit > 0:
		return errors.New("--inline needs CIDv1")
	case p.FileDAGWidth < 2:
		return fmt.Errorf("--max-file-links must be at least 2, not %d", p.FileDAGWidth)
	case p.InlineLimit < 0 || p.InlineLimit > maxInlineLimit:
		return fmt.Errorf("--inline-limit must be between 0 and %d", maxInlineLimit)
	case p.HAMTThreshold < 0:
		return errors.New("--hamt-threshold must not be negative")
	case p.HAMTFanout < 8 || p.HAMTFanout > 1024 || p.HAMTFanout&(p.HAMTFanout-1) != 0:
		return fmt.Errorf("--max-hamt-fanout must be a power of 2 between 8 and 1024, not %d", p.HAMTFanout)
	}
	if _, err := chunk.FromString(strings.NewReader(""), p.Chunker); err != nil {
		return fmt.Errorf("chunker %q: %w", p.Chunker, err)
	}
	return nil
}

// Prefix is the CID prefix of the profile's dag-pb nodes.
func (p Profile) Prefix() cid.Prefix {
	return cid.Prefix{Version: uint64(p.CIDVersion), Codec: cid.DagProtobuf, MhType: p.MhType, MhLength: -1}
}

// CidBuilder returns the builder for every dag-pb node (and, with the raw
// codec, every raw leaf) of the import.
func (p Profile) CidBuilder() cid.Builder {
	var b cid.Builder = p.Prefix()
	if p.InlineLimit > 0 {
		b = cidutil.InlineBuilder{Builder: b, Limit: p.InlineLimit}
	}
	return b
}

// Splitter returns a new splitter over r. The chunker string is always
// explicit, so boxo never falls back to its global default block size.
func (p Profile) Splitter(r interface{ Read([]byte) (int, error) }) (chunk.Splitter, error) {
	return chunk.FromString(r, p.Chunker)
}

// ChunkSize is the fixed chunk size, or 0 for content-defined chunkers.
func (p Profile) ChunkSize() int64 {
	n, err := strconv.ParseInt(strings.TrimPrefix(p.Chunker, "size-"), 10, 64)
	if err != nil || !strings.HasPrefix(p.Chunker, "size-") {
		return 0
	}
	return n
}

// String is a stable one-line description, stored beside each root so that
// a later run knows which settings made it.
func (p Profile) String() string {
	est := map[uio.SizeEstimationMode]string{uio.SizeEstimationLinks: "links", uio.SizeEstimationBlock: "block", uio.SizeEstimationDisabled: "disabled"}[p.HAMTEstimation]
	meta := []string{}
	if p.PreserveMode {
		meta = append(meta, "mode")
	}
	if p.PreserveMTime {
		meta = append(meta, "mtime")
	}
	if len(meta) == 0 {
		meta = append(meta, "none")
	}
	layout := "balanced"
	if p.Trickle {
		layout = "trickle"
	}
	return fmt.Sprintf("%s cidv%d %s %s raw-leaves=%t links=%d %s inline=%d hamt=%d/%s/%d meta=%s",
		p.Name, p.CIDVersion, mh.Codes[p.MhType], p.Chunker, p.RawLeaves, p.FileDAGWidth, layout,
		p.InlineLimit, p.HAMTThreshold, est, p.HAMTFanout, strings.Join(meta, ","))
}

func parseMetadata(s string) (mode, mtime bool, err error) {
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "mode":
			mode = true
		case "mtime":
			mtime = true
		case "none", "":
		default:
			return false, false, fmt.Errorf("--metadata: unknown field %q (use mtime,mode or none)", f)
		}
	}
	return mode, mtime, nil
}

// normaliseChunker turns kubo's chunker spellings into explicit ones.
func normaliseChunker(s, profileDefault string) (string, error) {
	switch {
	case s == "" || s == "default":
		return profileDefault, nil
	case s == "rabin":
		return "", errors.New("--chunker rabin needs explicit sizes: rabin-MIN-AVG-MAX")
	case strings.HasPrefix(s, "size-"), strings.HasPrefix(s, "rabin-"), s == "buzhash":
		return s, nil
	}
	return "", fmt.Errorf("unknown --chunker %q (size-N, rabin-MIN-AVG-MAX or buzhash)", s)
}
