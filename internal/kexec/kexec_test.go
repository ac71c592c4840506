package kexec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLockdownMode(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"[none] integrity confidentiality\n", "none"},
		{"none [integrity] confidentiality\n", "integrity"},
		{"none integrity [confidentiality]\n", "confidentiality"},
		{"", "none"},
		{"none [integrity", "none"},
		{"[]", "none"},
	} {
		if got := lockdownMode(tc.file); got != tc.want {
			t.Errorf("lockdownMode(%q) = %q, want %q", tc.file, got, tc.want)
		}
	}
}

func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{unix.EKEYREJECTED, "not signed"},
		{unix.EBADMSG, "not signed"},
		{unix.ENOEXEC, "not a kernel image"},
		{unix.ENOMEM, "not enough memory"},
		{unix.EADDRNOTAVAIL, "not enough memory"},
		{unix.EINVAL, ""},
	} {
		got := explain(tc.err)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("explain(%v) = %q, want it to say %q", tc.err, got, tc.want)
		}
	}
}

// TestLoadRefusesNonKernel: a file that is not a kernel is refused by the
// kernel itself, and nothing is left loaded.
func TestLoadRefusesNonKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("kexec_file_load needs CAP_SYS_BOOT")
	}
	if Loaded() {
		t.Skip("a kernel is loaded for kexec on this machine: not touching it")
	}
	p := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(p, []byte("not a kernel"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Load(p, nil, "console=ttyS0"); err == nil || !strings.Contains(err.Error(), "kexec_file_load "+p) {
		t.Fatalf("Load of a non-kernel = %v, want a kexec_file_load error naming it", err)
	}
	if Loaded() {
		t.Fatal("a kernel is loaded for kexec after a non-kernel was refused")
	}
	if err := Load(filepath.Join(t.TempDir(), "absent"), nil, ""); err == nil {
		t.Error("Load of a missing kernel succeeded")
	}
}
