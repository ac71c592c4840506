package kernel

import "testing"

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"6.1.0-50-amd64", "6.1.0-47-amd64", 1},
		{"6.1.0-9-amd64", "6.1.0-10-amd64", -1},
		{"6.12.38+deb12-amd64", "6.1.0-50-amd64", 1},
		{"6.1.0-50-amd64", "6.1.0-50-amd64", 0},
		{"1.0~rc1", "1.0", -1},
		{"1.0", "1.0a", -1},
		{"1.0a", "1.0+", -1},
		{"5.14.0-427.el9.x86_64", "5.14.0-70.el9.x86_64", 1},
		{"6.1.0-50-cloud-amd64", "6.1.0-50-amd64", 1},
		{"007", "7", 0},
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CompareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}
