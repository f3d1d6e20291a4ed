// Package cartest owns reading a CAR file whole in tests (export's,
// sync's, the e2e tests'), to check what a command or a function wrote.
package cartest

import (
	"errors"
	"io"
	"os"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
)

// CAR is a CAR file read whole.
type CAR struct {
	Version uint64
	Roots   []cid.Cid
	Blocks  []blocks.Block
}

// Read reads the CAR (v1 or v2) at path, failing the test where it cannot.
func Read(t testing.TB, path string) CAR {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br, err := carv2.NewBlockReader(f)
	if err != nil {
		t.Fatalf("CAR %s: %v", path, err)
	}
	c := CAR{Version: br.Version, Roots: br.Roots}
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			return c
		}
		if err != nil {
			t.Fatalf("CAR %s: %v", path, err)
		}
		c.Blocks = append(c.Blocks, b)
	}
}

// CIDs is the CIDs of c's blocks, in order.
func (c CAR) CIDs() []string {
	out := make([]string, len(c.Blocks))
	for i, b := range c.Blocks {
		out[i] = b.Cid().String()
	}
	return out
}
