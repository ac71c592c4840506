package kmod

import (
	"testing"
	"unsafe"
)

// The ioctl numbers and structure sizes must be those the C header gives:
// _IOR(0xB5, 1, struct smem_info) with a 1072-byte smem_info, and so on.
func TestUAPI(t *testing.T) {
	if s := unsafe.Sizeof(rawInfo{}); s != 1072 {
		t.Errorf("struct smem_info is 1072 bytes, Go's is %d", s)
	}
	for _, c := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"SMEM_IOC_INFO", iocInfo, 0x8430b501},
		{"SMEM_IOC_SEAL", iocSeal, 0xb503},
		{"SMEM_IOC_UNSEAL", iocUnseal, 0xb504},
		{"SMEM_IOC_RELEASE", iocRelease, 0x4010b505},
		{"SMEM_IOC_TAKE", iocTake, 0x4010b506},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}
