package push

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/ipfs/go-cid"
)

// Holds reports whether the node holds the DAG under c whole: it is
// pinned recursively (a pin that kubo made only once every block was in).
// A root found elsewhere than in this repository's push record is diffed
// against only then: a delta against a root the node lacks in part would
// leave the new root incomplete there.
func (k *Kubo) Holds(ctx context.Context, c cid.Cid) (bool, error) {
	var out struct {
		Keys map[string]struct{ Type string }
	}
	err := k.call(ctx, "pin/ls", url.Values{"arg": {c.String()}, "type": {"recursive"}}, nil, "", &out)
	var ke *Error
	if errors.As(err, &ke) && strings.Contains(ke.Message, "not pinned") {
		return false, nil
	}
	return err == nil && len(out.Keys) > 0, err
}
