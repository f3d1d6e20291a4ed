package chunker

import (
	"bytes"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/profile"
)

// A leaf's CID from leafSum is the one the profile's builder makes, for
// every CID version, codec, hash and inline limit, with one state used
// for block after block.
func TestLeafSumAsBuilder(t *testing.T) {
	blake := "blake2b-256"
	v0, v1 := 0, 1
	for _, tc := range []struct {
		name string
		prof string
		o    profile.Overrides
	}{
		{"v1-2025", profile.V1_2025, profile.Overrides{}},
		{"v0-2015", profile.V0_2015, profile.Overrides{}},
		{"v0-2015 as CIDv1", profile.V0_2015, profile.Overrides{CIDVersion: &v1}},
		{"v1-2025 as CIDv0", profile.V1_2025, profile.Overrides{CIDVersion: &v0}},
		{"blake2b", profile.V1_2025, profile.Overrides{Hash: &blake}},
	} {
		for _, inline := range []int{0, 32} {
			p, err := profile.New(tc.prof, tc.o)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			p.InlineLimit = inline
			for _, codec := range []uint64{cid.DagProtobuf, cid.Raw} {
				b := p.CidBuilder().WithCodec(codec)
				s := newLeafSum(p.CidBuilder(), codec)
				if wantFast := p.MhType == mh.SHA2_256; (s.h != nil) != wantFast {
					t.Errorf("%s: own SHA-256 state %v, want %v", tc.name, s.h != nil, wantFast)
				}
				for _, n := range []int{0, 1, 32, 33, 1000, 256 << 10} {
					block := bytes.Repeat([]byte{byte(n), 7}, n/2+1)[:n]
					want, err := b.Sum(block)
					if err != nil {
						t.Fatal(err)
					}
					got, err := s.Sum(block)
					if err != nil {
						t.Fatal(err)
					}
					if !got.Equals(want) {
						t.Errorf("%s, inline %d, codec %x, %d bytes: %s, want %s", tc.name, inline, codec, n, got, want)
					}
				}
			}
		}
	}
}
