package kernel

// CompareVersions orders two version strings the way dpkg and rpm order
// package versions (dpkg's verrevcmp): runs of digits compare as numbers,
// other runs character by character with letters before other symbols and
// '~' before everything, even the end of the string. It returns -1, 0 or 1.
// Kernel releases such as "6.1.0-50-amd64" and "6.12.38+deb12-amd64" sort
// as their packages do.
func CompareVersions(a, b string) int {
	for a != "" || b != "" {
		// Non-digit prefix.
		for (a != "" && !isDigit(a[0])) || (b != "" && !isDigit(b[0])) {
			ac, bc := order(a), order(b)
			if ac != bc {
				if ac < bc {
					return -1
				}
				return 1
			}
			a, b = a[1:], b[1:]
		}
		// Numeric run.
		for a != "" && a[0] == '0' {
			a = a[1:]
		}
		for b != "" && b[0] == '0' {
			b = b[1:]
		}
		first := 0
		for a != "" && isDigit(a[0]) && b != "" && isDigit(b[0]) {
			if first == 0 {
				first = int(a[0]) - int(b[0])
			}
			a, b = a[1:], b[1:]
		}
		if a != "" && isDigit(a[0]) {
			return 1
		}
		if b != "" && isDigit(b[0]) {
			return -1
		}
		if first != 0 {
			if first < 0 {
				return -1
			}
			return 1
		}
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// order is the weight of the first character of s in a non-digit run.
func order(s string) int {
	if s == "" || isDigit(s[0]) {
		return 0
	}
	c := s[0]
	switch {
	case c == '~':
		return -1
	case isLetter(c):
		return int(c)
	}
	return int(c) + 256
}
