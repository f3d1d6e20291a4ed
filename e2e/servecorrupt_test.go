//go:build e2e

package e2e

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/ipfs-sync/ipfs-sync/internal/packtest"
)

// TestServeNeverSendsCorruptLeaf flips one byte in the data of a file's
// leaf inside its pack: serve sends it neither in the file by path, nor as
// the raw block, nor in a CAR (each answer is an error status or cut
// short), and a pull from that serve into an empty repository and DEST
// fails without writing the file.
func TestServeNeverSendsCorruptLeaf(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "pool"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	content := make([]byte, 3<<20+12345) // four leaves of the default 1 MiB chunks
	for i := range content {
		content[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(filepath.Join(src, "pool", "big.deb"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "small.txt"), []byte("untouched\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, "repo")
	res := ipfsSync(t, repo, "-q", "sync", src)
	if res.Code != 0 {
		t.Fatal(res)
	}
	root := oneCID(t, res.Stdout)

	// The second leaf (raw, as the default profile makes them): its CID,
	// and the byte flipped in the middle of its data in the pack.
	leaf := content[1<<20 : 2<<20]
	h, err := mh.Sum(leaf, mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	leafCID := cid.NewCidV1(cid.Raw, h)
	const at = 1 << 19
	packtest.Flip(t, repo, leaf[at-64:at+64], 64, 0x01)
	flipped := bytes.Clone(leaf[at-32 : at+32])
	flipped[32] ^= 0x01

	base := startServe(t, repo, "--browse")
	for _, u := range []string{
		base + "/ipfs/" + root + "/pool/big.deb",
		base + "/ipfs/" + root + "/pool/big.deb?format=car",
		base + "/ipfs/" + root + "?format=car",
		base + "/ipfs/" + leafCID.String() + "?format=raw",
		base + "/ipfs/" + leafCID.String(),
	} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(body, flipped) {
			t.Errorf("%s: the changed bytes were sent (status %d)", u, resp.StatusCode)
		}
		if resp.StatusCode < 400 && rerr == nil {
			t.Errorf("%s: status %d and a complete body of %d bytes", u, resp.StatusCode, len(body))
		}
	}
	// The untouched file is still served whole.
	if resp, body, _ := get(t, base+"/ipfs/"+root+"/small.txt"); resp.StatusCode != 200 || string(body) != "untouched\n" {
		t.Errorf("small.txt: %d %q", resp.StatusCode, body)
	}

	dest := filepath.Join(dir, "dest")
	pull := ipfsSync(t, filepath.Join(dir, "pullrepo"), "pull", root, dest, "--from", base)
	if pull.Code == 0 {
		t.Fatalf("pull from a serve with a corrupt leaf succeeded:\n%s", pull)
	}
	// Nothing in DEST (temporary files included) holds the changed byte.
	filepath.WalkDir(dest, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if got, err := os.ReadFile(p); err == nil && bytes.Contains(got, flipped) {
				t.Errorf("pull wrote the changed byte into %s", p)
			}
		}
		return nil
	})
}
