package mem

import (
	"os"
	"strings"
	"testing"
)

func TestVDSOSymbolsOfSelf(t *testing.T) {
	syms, err := VDSOSymbols(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if syms == nil {
		t.Skip("this kernel maps no vDSO")
	}
	if _, ok := syms["__vdso_clock_gettime"]; !ok {
		t.Fatalf("vDSO symbols %v lack __vdso_clock_gettime", syms)
	}
	if d := CompareVDSO(syms, syms); d != "" {
		t.Fatalf("a vDSO differs from itself: %s", d)
	}
	moved := map[string]uint64{}
	for k, v := range syms {
		moved[k] = v + 16
	}
	if d := CompareVDSO(syms, moved); !strings.Contains(d, "moved from") {
		t.Fatalf("CompareVDSO missed moved symbols: %q", d)
	}
}
