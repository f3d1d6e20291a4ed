//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
)

// startServe runs `ipfs-sync serve [FLAGS...]` on a free loopback port and
// returns its base URL; it stops with the test.
func startServe(t *testing.T, repo string, flags ...string) string {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(syncBin, append([]string{"--repo", repo, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port)}, flags...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil || !strings.Contains(line, "serving") {
		t.Fatalf("serve did not start: %q %v", line, err)
	}
	go io.Copy(io.Discard, stderr)
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

func get(t *testing.T, url string) (*http.Response, []byte, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body, time.Since(start)
}

// carBlocks reads a CARv1 whose only root must be root, checks that every
// block hashes to its CID, and returns the blocks.
func carBlocks(t *testing.T, data []byte, root cid.Cid) map[cid.Cid][]byte {
	t.Helper()
	br, err := carv2.NewBlockReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(br.Roots) != 1 || !br.Roots[0].Equals(root) {
		t.Fatalf("CAR roots %v, want %s", br.Roots, root)
	}
	blocks := map[cid.Cid][]byte{}
	for {
		b, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		again, err := b.Cid().Prefix().Sum(b.RawData())
		if err != nil || !again.Equals(b.Cid()) {
			t.Fatalf("block %s does not hash to its CID", b.Cid())
		}
		blocks[b.Cid()] = b.RawData()
	}
	return blocks
}

// verifyCAR checks that every block hashes to its CID and that the blocks
// form the complete DAG under root; it returns the blocks.
func verifyCAR(t *testing.T, data []byte, root cid.Cid) map[cid.Cid][]byte {
	t.Helper()
	blocks := carBlocks(t, data, root)
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		data, ok := blocks[c]
		if !ok {
			t.Fatalf("CAR lacks %s: the DAG is incomplete", c)
		}
		if c.Prefix().Codec == cid.DagProtobuf {
			nd, err := mdag.DecodeProtobuf(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range nd.Links() {
				stack = append(stack, l.Cid)
			}
		}
	}
	return blocks
}

// TestServeTrustlessGateway fetches a root as a CAR and as raw blocks from
// `ipfs-sync serve`, checks every hash and that the DAG is complete,
// imports the CAR into kubo, and checks the error answers. A sync runs on
// the same store meanwhile: the server keeps answering.
func TestServeTrustlessGateway(t *testing.T) {
	dir, src, repo, rootStr := syncedTiny(t)
	root := cid.MustParse(rootStr)
	base := startServe(t, repo)

	resp, body, _ := get(t, base+"/ipfs/"+root.String()+"?format=car")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/vnd.ipld.car") {
		t.Fatalf("CAR: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	blocks := verifyCAR(t, body, root)
	car := filepath.Join(dir, "served.car")
	if err := os.WriteFile(car, body, 0o644); err != nil {
		t.Fatal(err)
	}
	k := kubo(t, "unixfs-v1-2025")
	kuboRun(t, k, "dag", "import", "--pin-roots=false", car)
	kuboRun(t, k, "dag", "stat", "--offline", root.String())

	n := 0
	for c := range blocks {
		if n++; n > 50 {
			break
		}
		resp, raw, _ := get(t, base+"/ipfs/"+c.String()+"?format=raw")
		if resp.StatusCode != 200 {
			t.Fatalf("raw %s: %s", c, resp.Status)
		}
		if again, _ := c.Prefix().Sum(raw); !again.Equals(c) {
			t.Fatalf("raw block %s does not hash to its CID", c)
		}
	}

	unknown, _ := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x12, MhLength: -1}.Sum([]byte("not in the store"))
	resp, _, took := get(t, base+"/ipfs/"+unknown.String()+"?format=raw")
	if resp.StatusCode != 404 || took > 2*time.Second {
		t.Fatalf("unknown CID: %s after %v, want 404 at once", resp.Status, took)
	}
	if resp, _, _ := get(t, base+"/ipfs/not-a-cid?format=raw"); resp.StatusCode != 400 {
		t.Fatalf("malformed path: %s, want 400", resp.Status)
	}

	// A sync on the same store while serving: both work.
	next := filepath.Join(dir, "next")
	copyTree(t, src, next)
	publishCycle(t, next, 1)
	rsyncTree(t, next, src)
	done := make(chan result, 1)
	go func() { done <- ipfsSync(t, repo, "-q", "sync", src) }()
	for {
		resp, _, _ := get(t, base+"/ipfs/"+root.String()+"?format=car&dag-scope=entity")
		if resp.StatusCode != 200 {
			t.Fatalf("during sync: %s", resp.Status)
		}
		select {
		case r := <-done:
			if r.Code != 0 {
				t.Fatalf("sync while serving: %s", r)
			}
			newRoot := cid.MustParse(oneCID(t, r.Stdout))
			_, body, _ := get(t, base+"/ipfs/"+newRoot.String()+"?format=car")
			verifyCAR(t, body, newRoot)
			return
		default:
		}
	}
}
