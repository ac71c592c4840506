package restored

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxReason bounds the text of a reason or an error that the daemon keeps
// in its state, sends to an anchor or logs: errors about an image may
// quote its contents, and an image holds process memory.
const MaxReason = 400

// Bound returns s with control characters and invalid UTF-8 escaped, cut
// to MaxReason bytes (the cut says how much was left out).
func Bound(s string) string {
	var b strings.Builder
	for i, r := range s {
		if b.Len() >= MaxReason {
			fmt.Fprintf(&b, "... (%d more bytes)", len(s)-i)
			break
		}
		switch {
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				fmt.Fprintf(&b, `\x%02x`, s[i])
				continue
			}
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
