package cli

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Names are data: a file name may hold any byte but '/' and NUL. Text
// output gives each name on one line, escaped as rsync does; JSON output
// gives it back exactly (a path_base64 field beside a path that is not
// UTF-8, which encoding/json would turn into U+FFFD).

// escapeName writes s as one line of text that maps back to it: each byte
// of a control character, a line or paragraph separator, a bidirectional
// control (which reorders what a terminal shows), or a sequence that is
// not UTF-8 becomes \#ooo, its value in octal; so does the backslash of a
// "\#" already in s. Everything else, other scripts included, is as is.
func escapeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if needsEscape(s, i, r, n) {
			for _, c := range []byte(s[i : i+n]) {
				fmt.Fprintf(&b, `\#%03o`, c)
			}
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func needsEscape(s string, i int, r rune, n int) bool {
	return r == utf8.RuneError && n == 1 || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' ||
		unicode.Is(unicode.Bidi_Control, r) || r == '\\' && strings.HasPrefix(s[i+1:], "#")
}

// rawIfNotUTF8 is s's bytes where JSON cannot carry s as it is, else nil
// (a []byte field marshals as base64; omitempty leaves nil out).
func rawIfNotUTF8(s string) []byte {
	if utf8.ValidString(s) {
		return nil
	}
	return []byte(s)
}
