package httpapi

import (
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"testing"
)

func TestEndpoint(t *testing.T) {
	for _, tc := range []struct {
		api, base, user, err string
	}{
		{api: "http://127.0.0.1:5001", base: "http://127.0.0.1:5001"},
		{api: "https://cluster.example/api/", base: "https://cluster.example/api"},
		{api: "http://127.0.0.1:5001/?x=1#f", base: "http://127.0.0.1:5001"},
		{api: "http://u:p@127.0.0.1:9094", base: "http://127.0.0.1:9094", user: "u:p"},
		{api: "/ip4/127.0.0.1/tcp/5001", base: "http://127.0.0.1:5001"},
		{api: "/ip4/127.0.0.1/tcp/5001/http", base: "http://127.0.0.1:5001"},
		{api: "/ip6/::1/tcp/5001", base: "http://[::1]:5001"},
		{api: "/dns4/kubo.example/tcp/5001", base: "http://kubo.example:5001"},
		{api: "/ip4/127.0.0.1/udp/5001", err: "API multiaddr \"/ip4/127.0.0.1/udp/5001\": want /ip4/HOST/tcp/PORT"},
		{api: "/ip4/127.0.0.1", err: "want /ip4/HOST/tcp/PORT"},
		{api: "/unix/tmp/sock/x", err: "want /ip4/HOST/tcp/PORT"},
		{api: "127.0.0.1:5001", err: "API URL \"127.0.0.1:5001\": want http(s)://HOST:PORT"},
		{api: "ftp://127.0.0.1:5001", err: "want http(s)://HOST:PORT"},
		{api: "http://", err: "want http(s)://HOST:PORT"},
	} {
		base, user, err := Endpoint("API", tc.api)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Endpoint(%q): %v, want an error saying %q", tc.api, err, tc.err)
			}
		case err != nil:
			t.Errorf("Endpoint(%q): %v", tc.api, err)
		case base != tc.base || user.String() != tc.user:
			t.Errorf("Endpoint(%q) = %s, %q; want %s, %q", tc.api, base, user.String(), tc.base, tc.user)
		}
	}
}

func TestCARForm(t *testing.T) {
	for _, tc := range []struct {
		name    string
		write   func(io.Writer) error
		want    string
		wantErr bool
	}{
		{name: "written", write: func(w io.Writer) error { _, err := io.WriteString(w, "car bytes"); return err }, want: "car bytes"},
		{name: "failed", write: func(io.Writer) error { return errors.New("disk gone") }, wantErr: true},
	} {
		body, ct := CARForm(tc.write)
		_, params, err := mime.ParseMediaType(ct)
		if err != nil {
			t.Fatalf("%s: content type %q: %v", tc.name, ct, err)
		}
		part, err := multipart.NewReader(body, params["boundary"]).NextPart()
		var got []byte
		if err == nil {
			got, err = io.ReadAll(part)
		}
		body.CloseWithError(errors.New("done"))
		if tc.wantErr {
			if err == nil {
				t.Errorf("%s: read %q, want the writer's error", tc.name, got)
			}
			continue
		}
		if err != nil || string(got) != tc.want || part.FileName() != "delta.car" {
			t.Errorf("%s: %q (file %q), %v; want %q in delta.car", tc.name, got, part.FileName(), err, tc.want)
		}
	}
}
