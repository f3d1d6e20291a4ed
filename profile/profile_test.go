package profile

import (
	"strings"
	"testing"

	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func ptr[T any](v T) *T { return &v }

// The two IPIP-499 profiles as ipfs-sync builds them by default: with
// mode and mtime stored, hence dag-pb leaves.
var (
	v1Default = Profile{
		Name: V1_2025, CIDVersion: 1, MhType: mh.SHA2_256, Chunker: "size-1048576",
		FileDAGWidth: 1024, HAMTThreshold: 256 << 10, HAMTEstimation: uio.SizeEstimationBlock, HAMTFanout: 256,
		PreserveMode: true, PreserveMTime: true,
	}
	v0Default = Profile{
		Name: V0_2015, CIDVersion: 0, MhType: mh.SHA2_256, Chunker: "size-262144",
		FileDAGWidth: 174, HAMTThreshold: 256 << 10, HAMTEstimation: uio.SizeEstimationLinks, HAMTFanout: 256,
		PreserveMode: true, PreserveMTime: true,
	}
)

// with is p changed by edit.
func with(p Profile, edit func(*Profile)) Profile {
	edit(&p)
	return p
}

// plain is p without metadata: the profile exactly as IPIP-499 (and kubo
// without --preserve-mode/--preserve-mtime) defines it.
func plain(p Profile, rawLeaves bool) Profile {
	p.PreserveMode, p.PreserveMTime, p.RawLeaves = false, false, rawLeaves
	return p
}

// TestNew: each profile and each override, with kubo's meaning for the
// flag it is named after.
func TestNew(t *testing.T) {
	v1, v0 := plain(v1Default, true), plain(v0Default, false)
	none := ptr("none")
	tests := []struct {
		name    string
		profile string
		o       Overrides
		want    Profile
	}{
		{"no name is unixfs-v1-2025", "", Overrides{}, v1Default},
		{"unixfs-v1-2025", V1_2025, Overrides{}, v1Default},
		{"unixfs-v0-2015", V0_2015, Overrides{}, v0Default},
		{"unixfs-v1-2025 without metadata has raw leaves", V1_2025, Overrides{Metadata: none}, v1},
		{"unixfs-v0-2015 without metadata", V0_2015, Overrides{Metadata: none}, v0},

		{"metadata mtime only", V1_2025, Overrides{Metadata: ptr("mtime")}, with(v1Default, func(p *Profile) { p.PreserveMode = false })},
		{"metadata mode only", V1_2025, Overrides{Metadata: ptr("mode")}, with(v1Default, func(p *Profile) { p.PreserveMTime = false })},
		{"metadata in any order, spaced", V0_2015, Overrides{Metadata: ptr(" mode , mtime")}, v0Default},
		{"metadata empty is none", V1_2025, Overrides{Metadata: ptr("")}, v1},

		// kubo's "CIDv1 enables raw leaves" holds only when nothing set
		// them, and a profile always does.
		{"cid-version 1 keeps unixfs-v0-2015's dag-pb leaves", V0_2015, Overrides{Metadata: none, CIDVersion: ptr(1)}, with(v0, func(p *Profile) { p.CIDVersion = 1 })},
		{"cid-version 0 keeps unixfs-v1-2025's raw leaves", V1_2025, Overrides{Metadata: none, CIDVersion: ptr(0)}, with(v1, func(p *Profile) { p.CIDVersion = 0 })},
		{"hash", V1_2025, Overrides{Metadata: none, Hash: ptr("blake2b-256")}, with(v1, func(p *Profile) { p.MhType = mh.BLAKE2B_MIN + 31 })},
		{"hash sha2-256 under CIDv0", V0_2015, Overrides{Hash: ptr("sha2-256")}, v0Default},

		{"raw-leaves=false", V1_2025, Overrides{Metadata: none, RawLeaves: ptr(false)}, plain(v1Default, false)},
		{"raw-leaves on unixfs-v0-2015", V0_2015, Overrides{Metadata: none, RawLeaves: ptr(true)}, plain(v0Default, true)},
		{"raw-leaves=false with metadata", V1_2025, Overrides{RawLeaves: ptr(false)}, v1Default},

		{"chunker default is the profile's", V0_2015, Overrides{Chunker: ptr("default")}, v0Default},
		{"chunker empty is the profile's", V1_2025, Overrides{Chunker: ptr("")}, v1Default},
		{"chunker size-N", V1_2025, Overrides{Chunker: ptr("size-1000")}, with(v1Default, func(p *Profile) { p.Chunker = "size-1000" })},
		{"chunker rabin", V1_2025, Overrides{Chunker: ptr("rabin-2048-65536-131072")}, with(v1Default, func(p *Profile) { p.Chunker = "rabin-2048-65536-131072" })},
		{"chunker buzhash", V1_2025, Overrides{Chunker: ptr("buzhash")}, with(v1Default, func(p *Profile) { p.Chunker = "buzhash" })},

		{"max-file-links", V1_2025, Overrides{MaxFileLinks: ptr(2)}, with(v1Default, func(p *Profile) { p.FileDAGWidth = 2 })},
		{"trickle", V0_2015, Overrides{Trickle: ptr(true)}, with(v0Default, func(p *Profile) { p.Trickle = true })},
		{"trickle=false", V1_2025, Overrides{Trickle: ptr(false)}, v1Default},

		{"inline has kubo's limit of 32", V1_2025, Overrides{Inline: ptr(true)}, with(v1Default, func(p *Profile) { p.InlineLimit = 32 })},
		{"inline with inline-limit", V1_2025, Overrides{Inline: ptr(true), InlineLimit: ptr(128)}, with(v1Default, func(p *Profile) { p.InlineLimit = 128 })},
		{"inline-limit without inline inlines nothing", V1_2025, Overrides{InlineLimit: ptr(100)}, v1Default},
		{"inline=false with inline-limit inlines nothing", V1_2025, Overrides{Inline: ptr(false), InlineLimit: ptr(100)}, v1Default},
		{"inline under CIDv1 from unixfs-v0-2015", V0_2015, Overrides{CIDVersion: ptr(1), Inline: ptr(true)}, with(v0Default, func(p *Profile) { p.CIDVersion, p.InlineLimit = 1, 32 })},

		{"max-hamt-fanout 8", V1_2025, Overrides{MaxHAMTFanout: ptr(8)}, with(v1Default, func(p *Profile) { p.HAMTFanout = 8 })},
		{"max-hamt-fanout 1024", V0_2015, Overrides{MaxHAMTFanout: ptr(1024)}, with(v0Default, func(p *Profile) { p.HAMTFanout = 1024 })},
		{"hamt-threshold 0 never shards", V1_2025, Overrides{HAMTThreshold: ptr(0)}, with(v1Default, func(p *Profile) { p.HAMTThreshold = 0 })},
		{"hamt-threshold", V1_2025, Overrides{HAMTThreshold: ptr(1000)}, with(v1Default, func(p *Profile) { p.HAMTThreshold = 1000 })},
		{"hamt-estimation links", V1_2025, Overrides{HAMTEstimation: ptr("links")}, with(v1Default, func(p *Profile) { p.HAMTEstimation = uio.SizeEstimationLinks })},
		{"hamt-estimation block", V0_2015, Overrides{HAMTEstimation: ptr("block")}, with(v0Default, func(p *Profile) { p.HAMTEstimation = uio.SizeEstimationBlock })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New(tt.profile, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestNewRejects: settings kubo refuses, or that would give a DAG kubo
// and gateways cannot read, are errors that name the flag to change.
func TestNewRejects(t *testing.T) {
	tests := []struct {
		name    string
		profile string
		o       Overrides
		want    string // in the error
	}{
		{"unknown profile", "unixfs-v2", Overrides{}, `unknown profile "unixfs-v2" (known: unixfs-v1-2025, unixfs-v0-2015)`},
		{"unknown metadata field", V1_2025, Overrides{Metadata: ptr("mtime,owner")}, `--metadata: unknown field "owner"`},
		{"cid-version 2", V1_2025, Overrides{CIDVersion: ptr(2)}, "--cid-version must be 0 or 1, not 2"},
		{"cid-version -1", V1_2025, Overrides{CIDVersion: ptr(-1)}, "--cid-version must be 0 or 1, not -1"},
		{"unknown hash", V1_2025, Overrides{Hash: ptr("sha3-257")}, `unknown --hash "sha3-257"`},
		{"raw-leaves with metadata", V1_2025, Overrides{RawLeaves: ptr(true)}, "--raw-leaves can't be used with UnixFS metadata"},
		{"raw-leaves with mtime", V0_2015, Overrides{Metadata: ptr("mtime"), RawLeaves: ptr(true)}, "use --metadata none or --raw-leaves=false"},
		{"chunker rabin without sizes", V1_2025, Overrides{Chunker: ptr("rabin")}, "--chunker rabin needs explicit sizes"},
		{"unknown chunker", V1_2025, Overrides{Chunker: ptr("fastcdc")}, `unknown --chunker "fastcdc"`},
		{"chunker size-0", V1_2025, Overrides{Chunker: ptr("size-0")}, `chunker "size-0"`},
		{"chunker above the block limit", V1_2025, Overrides{Chunker: ptr("size-4194304")}, `chunker "size-4194304"`},
		{"chunker size not a number", V1_2025, Overrides{Chunker: ptr("size-1k")}, `chunker "size-1k"`},
		{"CIDv0 with another hash", V0_2015, Overrides{Hash: ptr("blake2b-256")}, "CIDv0 only supports sha2-256; add --cid-version 1"},
		{"cid-version 0 with another hash", V1_2025, Overrides{CIDVersion: ptr(0), Hash: ptr("sha2-512")}, "CIDv0 only supports sha2-256"},
		{"inline under CIDv0", V0_2015, Overrides{Inline: ptr(true)}, "--inline needs CIDv1"},
		{"max-file-links 1", V1_2025, Overrides{MaxFileLinks: ptr(1)}, "--max-file-links must be at least 2, not 1"},
		{"inline-limit above 128", V1_2025, Overrides{Inline: ptr(true), InlineLimit: ptr(129)}, "--inline-limit must be between 0 and 128"},
		{"inline-limit negative", V1_2025, Overrides{Inline: ptr(true), InlineLimit: ptr(-1)}, "--inline-limit must be between 0 and 128"},
		{"hamt-threshold negative", V1_2025, Overrides{HAMTThreshold: ptr(-1)}, "--hamt-threshold must not be negative"},
		{"max-hamt-fanout 4", V1_2025, Overrides{MaxHAMTFanout: ptr(4)}, "--max-hamt-fanout must be a power of 2 between 8 and 1024, not 4"},
		{"max-hamt-fanout 2048", V1_2025, Overrides{MaxHAMTFanout: ptr(2048)}, "not 2048"},
		{"max-hamt-fanout not a power of 2", V1_2025, Overrides{MaxHAMTFanout: ptr(100)}, "not 100"},
		{"hamt-estimation unknown", V1_2025, Overrides{HAMTEstimation: ptr("entries")}, `--hamt-estimation must be links or block, not "entries"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.profile, tt.o)
			if err == nil {
				t.Fatalf("accepted: %s", p)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to say %q", err, tt.want)
			}
		})
	}
}

// TestString: the description stored beside each root decides whether
// the next run may reuse it, so a change to it makes every repository's
// next sync a full import.
func TestString(t *testing.T) {
	tests := []struct {
		p    Profile
		want string
	}{
		{v1Default, "unixfs-v1-2025 cidv1 sha2-256 size-1048576 raw-leaves=false links=1024 balanced inline=0 hamt=262144/block/256 meta=mode,mtime"},
		{plain(v0Default, false), "unixfs-v0-2015 cidv0 sha2-256 size-262144 raw-leaves=false links=174 balanced inline=0 hamt=262144/links/256 meta=none"},
		{with(plain(v1Default, true), func(p *Profile) { p.Trickle, p.InlineLimit, p.PreserveMTime = true, 32, true }),
			"unixfs-v1-2025 cidv1 sha2-256 size-1048576 raw-leaves=true links=1024 trickle inline=32 hamt=262144/block/256 meta=mtime"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
}

func TestChunkSize(t *testing.T) {
	for chunker, want := range map[string]int64{
		"size-262144":             262144,
		"size-1000":               1000,
		"rabin-2048-65536-131072": 0,
		"buzhash":                 0,
	} {
		if got := (Profile{Chunker: chunker}).ChunkSize(); got != want {
			t.Errorf("%s: ChunkSize %d, want %d", chunker, got, want)
		}
	}
}

// TestCidBuilder: with --inline, a block up to the limit gets an identity
// CID and a larger one the profile's prefix; without, none is inlined.
func TestCidBuilder(t *testing.T) {
	small, large := []byte(strings.Repeat("s", 32)), []byte(strings.Repeat("l", 33))
	tests := []struct {
		name        string
		o           Overrides
		smallInline bool
		version     uint64
	}{
		{"CIDv1, no inline", Overrides{}, false, 1},
		{"CIDv1, inline 32", Overrides{Inline: ptr(true)}, true, 1},
		{"CIDv0", Overrides{CIDVersion: ptr(0)}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(V1_2025, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			for _, data := range [][]byte{small, large} {
				c, err := p.CidBuilder().Sum(data)
				if err != nil {
					t.Fatal(err)
				}
				inline := c.Prefix().MhType == mh.IDENTITY
				if want := tt.smallInline && len(data) <= 32; inline != want {
					t.Errorf("%d bytes: %s inlined %v, want %v", len(data), c, inline, want)
				}
				if c.Version() != tt.version || c.Prefix().Codec != cid.DagProtobuf {
					t.Errorf("%d bytes: %s, want a dag-pb CIDv%d", len(data), c, tt.version)
				}
				if !inline && c.Prefix().MhType != mh.SHA2_256 {
					t.Errorf("%d bytes: %s not sha2-256", len(data), c)
				}
			}
		})
	}
}
