//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// UnixFS node types (unixfs.proto).
const (
	ufsRaw       = 0
	ufsDirectory = 1
	ufsFile      = 2
	ufsMetadata  = 3
	ufsSymlink   = 4
	ufsHAMTShard = 5
)

// dagNode is a dag-pb node as `ipfs dag get` prints it.
type dagNode struct {
	Data  []byte
	Links []dagLink
	Raw   bool // a raw block: no links, Data is the block
}

type dagLink struct {
	Name  string
	Cid   string
	Tsize uint64
}

// dagGet reads the node c from the kubo repository ipfsPath.
func dagGet(t testing.TB, ipfsPath, c string) dagNode {
	t.Helper()
	out := kuboRun(t, ipfsPath, "dag", "get", "--offline", c)
	var js struct {
		Data *struct {
			Slash struct {
				Bytes string `json:"bytes"`
			} `json:"/"`
		}
		Links []struct {
			Hash struct {
				Slash string `json:"/"`
			}
			Name  string
			Tsize uint64
		}
		Slash *struct { // a raw block
			Bytes string `json:"bytes"`
		} `json:"/"`
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatalf("ipfs dag get %s: %v\n%s", c, err, out)
	}
	var n dagNode
	var err error
	switch {
	case js.Slash != nil:
		n.Raw = true
		n.Data, err = base64.RawStdEncoding.DecodeString(js.Slash.Bytes)
	case js.Data != nil:
		n.Data, err = base64.RawStdEncoding.DecodeString(js.Data.Slash.Bytes)
	}
	if err != nil {
		t.Fatalf("ipfs dag get %s: data: %v", c, err)
	}
	for _, l := range js.Links {
		n.Links = append(n.Links, dagLink{Name: l.Name, Cid: l.Hash.Slash, Tsize: l.Tsize})
	}
	return n
}

// unixfs is the decoded Data of a dag-pb UnixFS node.
type unixfs struct {
	Type     uint64
	FileSize uint64
	HasSize  bool
	Blocks   int
	Fanout   uint64
	Mode     uint64
	HasMode  bool
	MTime    time.Time
	HasMTime bool
	DataLen  int
}

func (u unixfs) String() string {
	s := fmt.Sprintf("type=%d", u.Type)
	if u.HasSize {
		s += fmt.Sprintf(" filesize=%d blocks=%d", u.FileSize, u.Blocks)
	}
	if u.DataLen > 0 {
		s += fmt.Sprintf(" data=%dB", u.DataLen)
	}
	if u.Fanout > 0 {
		s += fmt.Sprintf(" fanout=%d", u.Fanout)
	}
	if u.HasMode {
		s += fmt.Sprintf(" mode=%04o", u.Mode)
	}
	if u.HasMTime {
		s += fmt.Sprintf(" mtime=%d.%09d", u.MTime.Unix(), u.MTime.Nanosecond())
	}
	return s
}

// decodeUnixFS parses the UnixFS protobuf in a dag-pb node's Data.
func decodeUnixFS(b []byte) (unixfs, error) {
	var u unixfs
	err := protoFields(b, func(field int, wire int, v uint64, bytes []byte) error {
		switch field {
		case 1:
			u.Type = v
		case 2:
			u.DataLen = len(bytes)
		case 3:
			u.FileSize, u.HasSize = v, true
		case 4:
			u.Blocks++
		case 6:
			u.Fanout = v
		case 7:
			u.Mode, u.HasMode = v, true
		case 8:
			var sec int64
			var nsec uint64
			err := protoFields(bytes, func(f, w int, v uint64, _ []byte) error {
				switch f {
				case 1:
					sec = int64(v)
				case 2:
					nsec = v
				}
				return nil
			})
			if err != nil {
				return err
			}
			u.MTime, u.HasMTime = time.Unix(sec, int64(nsec)).UTC(), true
		}
		return nil
	})
	return u, err
}

// protoFields calls fn for each field of a protobuf message: v holds
// varint and fixed values, bytes length-delimited ones.
func protoFields(b []byte, fn func(field, wire int, v uint64, bytes []byte) error) error {
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("bad protobuf key")
		}
		b = b[n:]
		field, wire := int(key>>3), int(key&7)
		var v uint64
		var val []byte
		switch wire {
		case 0:
			if v, n = binary.Uvarint(b); n <= 0 {
				return errors.New("bad varint")
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return errors.New("short fixed64")
			}
			v, b = binary.LittleEndian.Uint64(b), b[8:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return errors.New("bad length")
			}
			val, b = b[n:n+int(l)], b[n+int(l):]
		case 5:
			if len(b) < 4 {
				return errors.New("short fixed32")
			}
			v, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		default:
			return fmt.Errorf("wire type %d", wire)
		}
		if err := fn(field, wire, v, val); err != nil {
			return err
		}
	}
	return nil
}

// unixfsType is the UnixFS type of the node c in ipfsPath.
func unixfsType(t testing.TB, ipfsPath, c string) uint64 {
	t.Helper()
	n := dagGet(t, ipfsPath, c)
	if n.Raw {
		return ufsRaw
	}
	u, err := decodeUnixFS(n.Data)
	if err != nil {
		t.Fatalf("%s: %v", c, err)
	}
	return u.Type
}

// assertSameRoot fails the test when ipfs-sync's root got differs from
// kubo's want, and then explains where the two DAGs part: ipfs-sync's DAG
// (exported from repo) is imported into kubo's repository ipfsPath and both
// are walked side by side.
func assertSameRoot(t *testing.T, ipfsPath, repo, want, got, repro string) {
	t.Helper()
	if want == got {
		return
	}
	t.Errorf("root CID mismatch\n  kubo:      %s\n  ipfs-sync: %s\n  repro: %s", want, got, repro)
	car := filepath.Join(t.TempDir(), "ipfs-sync.car")
	if res := ipfsSync(t, repo, "export", "--car", car, got); res.Code != 0 {
		t.Logf("cannot explain: export failed:\n%s", res)
		return
	}
	if res := kuboTry(t, ipfsPath, "dag", "import", "--pin-roots=false", "--offline", car); res.Code != 0 {
		t.Logf("cannot explain: ipfs dag import failed:\n%s", res)
		return
	}
	budget := 10
	diffDAG(t, ipfsPath, ".", want, got, &budget)
}

// diffDAG reports the deepest nodes where kubo's DAG (want) and ipfs-sync's
// (got) differ, at most *budget of them.
func diffDAG(t *testing.T, ipfsPath, path, want, got string, budget *int) {
	t.Helper()
	if want == got || *budget <= 0 {
		return
	}
	w, g := dagGet(t, ipfsPath, want), dagGet(t, ipfsPath, got)
	describe := func(n dagNode) string {
		if n.Raw {
			return fmt.Sprintf("raw block, %d bytes", len(n.Data))
		}
		u, err := decodeUnixFS(n.Data)
		if err != nil {
			return fmt.Sprintf("undecodable data: %v", err)
		}
		return fmt.Sprintf("%s, %d links", u, len(n.Links))
	}
	wl, gl := linksByName(w.Links), linksByName(g.Links)
	names := map[string]bool{}
	for n := range wl {
		names[n] = true
	}
	for n := range gl {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	childDiffers := false
	for _, n := range sorted {
		a, okA := wl[n]
		b, okB := gl[n]
		switch {
		case !okA:
			t.Errorf("%s: link %q only in ipfs-sync's DAG (%s)", path, n, b.Cid)
			*budget--
			childDiffers = true
		case !okB:
			t.Errorf("%s: link %q only in kubo's DAG (%s)", path, n, a.Cid)
			*budget--
			childDiffers = true
		case a.Cid != b.Cid:
			childDiffers = true
			diffDAG(t, ipfsPath, path+"/"+n, a.Cid, b.Cid, budget)
		case a.Tsize != b.Tsize:
			t.Errorf("%s: link %q Tsize kubo %d, ipfs-sync %d", path, n, a.Tsize, b.Tsize)
			*budget--
			childDiffers = true
		}
	}
	if !childDiffers && *budget > 0 {
		*budget--
		t.Errorf("%s differs:\n  kubo      %s: %s\n  ipfs-sync %s: %s", path, want, describe(w), got, describe(g))
	}
}

func linksByName(ls []dagLink) map[string]dagLink {
	m := make(map[string]dagLink, len(ls))
	for i, l := range ls {
		name := l.Name
		if _, dup := m[name]; dup || name == "" {
			name = fmt.Sprintf("%s#%d", name, i)
		}
		m[name] = l
	}
	return m
}

// shellQuote quotes args for a repro line a reader can paste.
func shellQuote(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./,:") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
