package cli

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestEscapeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain/name.deb", "plain/name.deb"},
		{"caf\u00e9 \u65e5\u672c", "caf\u00e9 \u65e5\u672c"},
		{"a\nb", `a\#012b`},
		{"tab\there", `tab\#011here`},
		{"cr\r", `cr\#015`},
		{"del\x7f", `del\#177`},
		{"c1\u0085", `c1\#302\#205`},
		{"bad\xff\xfe", `bad\#377\#376`},
		{"cut\xe2\x82", `cut\#342\#202`},
		{"ls\u2028ps\u2029", `ls\#342\#200\#250ps\#342\#200\#251`},
		{"rlo\u202eabc", `rlo\#342\#200\#256abc`},
		{`back\#slash`, `back\#134#slash`},
		{`back\slash`, `back\slash`},
		{`end\`, `end\`},
		{"\ufffd", "\ufffd"}, // a real U+FFFD is UTF-8
	}
	unescape := regexp.MustCompile(`\\#[0-7]{3}`)
	for _, tt := range tests {
		got := escapeName(tt.in)
		if got != tt.want {
			t.Errorf("escapeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.ContainsAny(got, "\n\r\t") {
			t.Errorf("escapeName(%q) = %q spans lines", tt.in, got)
		}
		back := unescape.ReplaceAllStringFunc(got, func(e string) string {
			v, _ := strconv.ParseUint(e[2:], 8, 8)
			return string([]byte{byte(v)})
		})
		if back != tt.in {
			t.Errorf("escapeName(%q) = %q maps back to %q", tt.in, got, back)
		}
	}
}
