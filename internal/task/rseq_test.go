package task

import (
	"testing"

	"github.com/seamless-linux/seamless/internal/ptrace"
)

func TestRseqRegistered(t *testing.T) {
	for _, tc := range []struct {
		name string
		rs   ptrace.Rseq
		want bool
	}{
		{"none, Linux 6.3 and later", ptrace.Rseq{}, false},
		// Linux 6.1 (the lab's Debian kernels) for a Go program's thread.
		{"none, before Linux 6.3", ptrace.Rseq{Size: 32}, false},
		{"glibc's", ptrace.Rseq{Pointer: 0x7f0000001000, Size: 32, Signature: 0x53053053}, true},
	} {
		if got := rseqRegistered(tc.rs); got != tc.want {
			t.Errorf("%s: rseqRegistered(%+v) = %v, want %v", tc.name, tc.rs, got, tc.want)
		}
	}
}
