package image

import "testing"

// TestChecksumText: each format version's sums are written with their
// width in hex digits and read back; a sum too wide for the version is
// refused.
func TestChecksumText(t *testing.T) {
	tests := []struct {
		version int
		sum     uint64
		text    string
	}{
		{1, 0x1b2c3d4e, "1b2c3d4e"},
		{3, 0x0000000a, "0000000a"},
		{4, 0x9e6f456f18e1347f, "9e6f456f18e1347f"},
		{4, 0x1, "0000000000000001"},
	}
	for _, tt := range tests {
		c := checksumOf(tt.version)
		if got := c.format(tt.sum); got != tt.text {
			t.Errorf("version %d: format(%#x) = %q, want %q", tt.version, tt.sum, got, tt.text)
		}
		if got, err := c.parse(tt.text); err != nil || got != tt.sum {
			t.Errorf("version %d: parse(%q) = %#x, %v", tt.version, tt.text, got, err)
		}
	}
	if _, err := checksumOf(3).parse("9e6f456f18e1347f"); err == nil {
		t.Error("a 64-bit sum was accepted in a CRC-32C MANIFEST")
	}
	if a, b := checksumOf(3).sum([]byte("x")), checksumOf(4).sum([]byte("x")); a == b || a>>32 != 0 {
		t.Errorf("version 3 and 4 sums of the same bytes: %#x, %#x", a, b)
	}
}
