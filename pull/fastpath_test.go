package pull

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs-sync/ipfs-sync/internal/fastpath/fastpathtest"
)

// A pull and an update write the same DEST with the Linux fast paths
// (copy_file_range, one syncfs at the end) and without them
// (IPFS_SYNC_NO_FASTPATH: copies through a buffer, each file and
// directory fsynced, as on other systems): a renamed file is copied from
// its old path, a file is patched, modes and mtimes move.
func TestFastPathModes(t *testing.T) {
	fastpathtest.BothModes(t, func(t *testing.T, fast bool) {
		g := newDAGStore(t)
		old := sample()
		next := old.clone()
		deb := next.at("pool/main/h/hello").kids
		deb["hello_1.0_all.deb"] = deb["hello_1.0_amd64.deb"]
		delete(deb, "hello_1.0_amd64.deb")
		p := next.at("Packages")
		p.data = append(p.data, randBytes(9, 3000)...)
		p.mtime = p.mtime.Add(time.Minute)
		next.at("tools/run.sh").mode = 0o700
		next.at("pool").mtime = t0.Add(time.Hour)
		src := &Store{BS: g.bs}
		dest := filepath.Join(t.TempDir(), "dest")
		mustPull(t, src, g.build(old), dest)
		checkTree(t, dest, old)
		res := mustPull(t, src, g.build(next), dest)
		checkTree(t, dest, next)
		if res.FilesCopied != 1 || res.BytesReused == 0 {
			t.Errorf("update: %d files copied, %d bytes reused; want the renamed file copied and Packages' chunks reused", res.FilesCopied, res.BytesReused)
		}
	})
}
