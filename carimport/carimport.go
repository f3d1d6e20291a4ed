// Package carimport owns reading CAR files into the store: `ipfs-sync
// import`, the counterpart of export (kubo's `ipfs dag import`). Every
// block is checked against its CID before it is stored; with a ref name,
// each CAR's root is recorded once the whole DAG under it is in the store.
//
// It is a package of its own, not a part of export or blockstore: export
// only reads the store and trusts what it reads, while an import takes
// bytes from elsewhere, writes them under the repository's lock and
// decides when a ref may move, as sync does; blockstore stores blocks and
// refs but knows no file format and no rule for when a root is whole.
package carimport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"

	"github.com/ipfs-sync/ipfs-sync/blockstore"
)

// Options say what an import records.
type Options struct {
	// Name is the ref each CAR's root is recorded in, in the order the
	// CARs are given; "" stores the blocks and moves no ref.
	Name string
	// Stdin is read for the path "-" (nil: os.Stdin).
	Stdin io.Reader
}

// CAR is what one file held.
type CAR struct {
	Path      string   `json:"path"`
	Roots     []string `json:"roots"`
	Blocks    int64    `json:"blocks"`
	Bytes     int64    `json:"bytes"`
	BlocksNew int64    `json:"blocks_new"`
	BytesNew  int64    `json:"bytes_new"`
}

// Summary is what an import did.
type Summary struct {
	CARs      []CAR   `json:"cars"`
	Blocks    int64   `json:"blocks"`
	Bytes     int64   `json:"bytes"`
	BlocksNew int64   `json:"blocks_new"`
	BytesNew  int64   `json:"bytes_new"`
	Name      string  `json:"name,omitempty"`
	Root      string  `json:"root,omitempty"` // the ref's new root, with a Name
	Seconds   float64 `json:"seconds"`
}

// ErrBadBlock is a block whose bytes do not hash to its CID.
var ErrBadBlock = errors.New("block does not match its CID")

// Run imports the CARs at paths into store, opened for writing, in order.
// Every block is verified and stored, and all are made durable, before
// any ref moves. With opts.Name, each CAR must have exactly one root, and
// the ref moves to each CAR's root in turn only if every one of those
// DAGs is complete in the store (a delta CAR completes its root together
// with the ref's previous root or an earlier CAR's); otherwise no ref
// moves and the error is an *IncompleteError. A CAR with a block that
// fails verification stops the import: nothing is recorded.
func Run(ctx context.Context, store *blockstore.Store, paths []string, opts Options) (Summary, error) {
	start := time.Now()
	sum := Summary{Name: opts.Name}
	w := store.NewWriter(false)
	for _, p := range paths {
		car, err := readCAR(ctx, w, p, opts)
		if err != nil {
			return sum, fmt.Errorf("%s: %w", p, err)
		}
		sum.CARs = append(sum.CARs, car)
		sum.Blocks += car.Blocks
		sum.Bytes += car.Bytes
		sum.BlocksNew += car.BlocksNew
		sum.BytesNew += car.BytesNew
	}
	if err := w.Flush(ctx); err != nil {
		return sum, err
	}
	if opts.Name != "" {
		root, err := record(ctx, store, opts.Name, &sum, start)
		if err != nil {
			return sum, err
		}
		sum.Root = root
	}
	sum.Seconds = time.Since(start).Seconds()
	return sum, nil
}

// readCAR stores the blocks of the CAR at path through w.
func readCAR(ctx context.Context, w *blockstore.Writer, path string, opts Options) (CAR, error) {
	car := CAR{Path: path}
	var r io.Reader = os.Stdin
	if opts.Stdin != nil {
		r = opts.Stdin
	}
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return car, err
		}
		defer f.Close()
		r = f
	}
	// Verified below, where the error can name the block; the reader's
	// own check would hash every block a second time.
	br, err := carv2.NewBlockReader(r, carv2.WithTrustedCAR(true))
	if err != nil {
		return car, fmt.Errorf("not a CAR: %w", err)
	}
	for _, c := range br.Roots {
		car.Roots = append(car.Roots, c.String())
	}
	if opts.Name != "" && len(br.Roots) != 1 {
		return car, fmt.Errorf("has %d roots; a ref records one root per CAR (import it without --name)", len(br.Roots))
	}
	blocksBefore, bytesBefore := w.Blocks, w.Bytes
	for {
		if err := ctx.Err(); err != nil {
			return car, err
		}
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return car, fmt.Errorf("after block %d: %w", car.Blocks, err)
		}
		if err := verify(b); err != nil {
			return car, fmt.Errorf("block %d: %w; nothing recorded", car.Blocks+1, err)
		}
		if err := w.PutBlock(ctx, b.Cid(), b.RawData()); err != nil {
			return car, err
		}
		car.Blocks++
		car.Bytes += int64(len(b.RawData()))
	}
	car.BlocksNew, car.BytesNew = w.Blocks-blocksBefore, w.Bytes-bytesBefore
	return car, nil
}

// verify checks that b's bytes hash to its CID with the CID's own hash
// function.
func verify(b blocks.Block) error {
	c := b.Cid()
	got, err := c.Prefix().Sum(b.RawData())
	if err != nil {
		return fmt.Errorf("%s: %w", c, err)
	}
	if !got.Equals(c) {
		return fmt.Errorf("%s: %w (the bytes hash to %s)", c, ErrBadBlock, got)
	}
	return nil
}

// record moves the ref name to each CAR's root in turn, once all of them
// are complete, and returns the last.
func record(ctx context.Context, store *blockstore.Store, name string, sum *Summary, start time.Time) (string, error) {
	ref, _, err := store.Ref(name)
	if err != nil {
		return "", err
	}
	// The current root is complete unless fsck found the store damaged
	// since: then nothing is taken on trust.
	prev := cid.Undef
	if cur, ok := ref.Current(); ok && !store.Damaged() {
		if prev, err = cid.Decode(cur.Root); err != nil {
			return "", fmt.Errorf("ref %q names a bad root %q: %w", name, cur.Root, err)
		}
	}
	roots := make([]cid.Cid, len(sum.CARs))
	for i, car := range sum.CARs {
		root, err := cid.Decode(car.Roots[0])
		if err != nil {
			return "", err
		}
		missing, err := Missing(ctx, store.Blockstore(), prev, root)
		if err != nil {
			return "", fmt.Errorf("%s: root %s: %w", car.Path, root, err)
		}
		if len(missing) > 0 {
			return "", &IncompleteError{Path: car.Path, Root: root, Missing: missing}
		}
		roots[i], prev = root, root
	}
	for i, root := range roots {
		js, err := json.Marshal(sum.CARs[i])
		if err != nil {
			return "", err
		}
		if err := store.Advance(name, blockstore.Version{Root: root.String(), Time: start.UTC(), Summary: js}); err != nil {
			return "", err
		}
	}
	return roots[len(roots)-1].String(), nil
}

// IncompleteError is a root some of whose blocks are in neither the store
// nor the CARs imported: its ref did not move.
type IncompleteError struct {
	Path    string
	Root    cid.Cid
	Missing []cid.Cid // each once, in the order the walk met them
}

// listed is how many missing CIDs the message names.
const listed = 10

func (e *IncompleteError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: the DAG under root %s lacks %d block(s), no ref moved (import the CARs it builds on first, in order): ", e.Path, e.Root, len(e.Missing))
	for i, c := range e.Missing[:min(len(e.Missing), listed)] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.String())
	}
	if len(e.Missing) > listed {
		fmt.Fprintf(&b, " and %d more", len(e.Missing)-listed)
	}
	return b.String()
}
