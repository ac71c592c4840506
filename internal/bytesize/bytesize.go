// Package bytesize writes sizes for people: 1.5 GiB, 12.0 MiB, 4.0 KiB;
// and counts: 1 process, 2 processes.
package bytesize

import "fmt"

// Format writes n bytes in the largest binary unit that keeps it at or
// above one.
func Format(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Count writes n things, with the singular one or the plural many.
func Count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
