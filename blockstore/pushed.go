package blockstore

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ipfs/go-cid"
)

type pushRecord struct {
	API  string    `json:"api"`
	Name string    `json:"name"`
	Root string    `json:"root"`
	Time time.Time `json:"time"`
}

func (s *Store) pushPath(api, name string) string {
	return filepath.Join(s.dir, "pushed", base64.RawURLEncoding.EncodeToString([]byte(api+"\x00"+name))+".json")
}

// Pushed is the root last pushed to the API under name, or cid.Undef.
func (s *Store) Pushed(api, name string) (cid.Cid, error) {
	data, err := os.ReadFile(s.pushPath(api, name))
	if errors.Is(err, os.ErrNotExist) {
		return cid.Undef, nil
	}
	if err != nil {
		return cid.Undef, fmt.Errorf("read push record: %w", err)
	}
	var r pushRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return cid.Undef, nil // a corrupt record only costs a full push
	}
	c, err := cid.Decode(r.Root)
	if err != nil {
		return cid.Undef, nil
	}
	return c, nil
}

// RecordPush notes that root is now pinned at api under name.
func (s *Store) RecordPush(api, name string, root cid.Cid) error {
	if err := os.MkdirAll(filepath.Join(s.dir, "pushed"), 0o755); err != nil {
		return err
	}
	data, _ := json.Marshal(pushRecord{API: api, Name: name, Root: root.String(), Time: time.Now().UTC()})
	return writeFileAtomic(s.pushPath(api, name), data)
}
