package export

import (
	"context"
	"fmt"
	"os"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
)

// DeltaFile is a CARv1 written while a sync runs, holding exactly the
// blocks that run stored. Its root is known only at the end, so the header
// starts with a placeholder of the same length and is rewritten in place.
type DeltaFile struct {
	path        string
	f           *os.File
	car         storage.WritableCar
	placeholder cid.Cid
	done        bool
	Stats
}

// CreateDelta starts a delta CAR at path for roots built with prefix.
func CreateDelta(path string, prefix cid.Prefix) (*DeltaFile, error) {
	placeholder, err := prefix.Sum(nil)
	if err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create CAR: %w", err)
	}
	car, err := storage.NewWritable(f, []cid.Cid{placeholder}, carv2.WriteAsCarV1(true), carv2.AllowDuplicatePuts(true))
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return &DeltaFile{path: path, f: f, car: car, placeholder: placeholder}, nil
}

// Put appends one block. Callers serialise calls.
func (d *DeltaFile) Put(ctx context.Context, b blocks.Block) error {
	d.Blocks++
	d.Bytes += int64(len(b.RawData()))
	if err := d.car.Put(ctx, b.Cid().KeyString(), b.RawData()); err != nil {
		return fmt.Errorf("write %s: %w", d.path, err)
	}
	return nil
}

// Finish writes root into the header and closes the file.
func (d *DeltaFile) Finish(root cid.Cid) error {
	if err := d.car.Finalize(); err != nil {
		return fmt.Errorf("write %s: %w", d.path, err)
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", d.path, err)
	}
	if err := d.f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", d.path, err)
	}
	if root.ByteLen() != d.placeholder.ByteLen() {
		return fmt.Errorf("write %s: root %s cannot replace a %d-byte header root", d.path, root, d.placeholder.ByteLen())
	}
	if err := carv2.ReplaceRootsInFile(d.path, []cid.Cid{root}); err != nil {
		return fmt.Errorf("write %s: %w", d.path, err)
	}
	d.done = true
	return nil
}

// Abort removes the file unless Finish completed it.
func (d *DeltaFile) Abort() {
	if d.done {
		return
	}
	d.f.Close()
	os.Remove(d.path)
}
