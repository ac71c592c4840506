package kexec

import (
	"bytes"
	"encoding/binary"
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

func TestBzImageInitSize(t *testing.T) {
	hdr := func(magic string, version uint16, initSize uint32) []byte {
		b := make([]byte, 0x400)
		copy(b[0x202:], magic)
		binary.LittleEndian.PutUint16(b[0x206:], version)
		binary.LittleEndian.PutUint32(b[0x260:], initSize)
		return b
	}
	for _, tc := range []struct {
		name string
		img  []byte
		want uint32
		err  string
	}{
		{"6.1", hdr("HdrS", 0x020f, 0x3a5f000), 0x3a5f000, ""},
		{"old protocol", hdr("HdrS", 0x0209, 1), 0, "has no init_size"},
		{"not a kernel", hdr("ELF\x02", 0x020f, 1), 0, "no HdrS"},
		{"truncated", []byte("MZ"), 0, "not a bzImage"},
	} {
		got, err := bzImageInitSize(bytes.NewReader(tc.img))
		if tc.err == "" && (err != nil || got != tc.want) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %#x, %v; want %#x, %q", tc.name, got, err, tc.want, tc.err)
		}
	}
}
