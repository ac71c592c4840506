package update

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/kernel"
)

// TestReplaceKernel: the plain kernel `seamless update` loaded gives way
// before the image's load, and comes back when that load fails or the
// image is not handed over; a kernel that was not loaded is not loaded by
// the way back either.
func TestReplaceKernel(t *testing.T) {
	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd.img")
	if err := os.WriteFile(initrd, []byte("initrd"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := &contract.Intent{Cmdline: "root=/dev/vda1",
		Kernel: kernel.Kernel{Release: "6.1.0-50-amd64", Image: filepath.Join(dir, "vmlinuz"), Initrd: initrd}}
	const withImage = "root=/dev/vda1 memmap=0x8000000$0x1a8000000 seamless.image=kmod:0x1abc65000,1"
	tests := []struct {
		name      string
		loaded    bool  // a kernel was loaded before
		loadErr   error // the image's load fails
		kept      bool  // the image was handed over
		wantErr   bool
		wantLoads []string
		unloads   int
	}{
		{"handed over", true, nil, true, false, []string{withImage}, 1},
		{"load fails: the plain kernel again", true, errors.New("ENOMEM"), false, true, []string{withImage, in.Cmdline}, 1},
		{"loaded, then abandoned: the plain kernel again", true, nil, false, false, []string{withImage, in.Cmdline}, 1},
		{"nothing loaded before, load fails: nothing loaded after", false, errors.New("ENOMEM"), false, true, []string{withImage}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var loads []string
			unloads := 0
			saved := []any{kexecLoad, kexecLoaded, kexecUnload}
			t.Cleanup(func() {
				kexecLoad = saved[0].(func(string, *os.File, string) error)
				kexecLoaded = saved[1].(func() bool)
				kexecUnload = saved[2].(func() error)
			})
			kexecLoaded = func() bool { return tt.loaded }
			kexecUnload = func() error { unloads++; return nil }
			kexecLoad = func(_ string, _ *os.File, cmdline string) error {
				loads = append(loads, cmdline)
				if cmdline == withImage {
					return tt.loadErr
				}
				return nil
			}
			sg := &staging{store: "kmod"}
			err := sg.replaceKernel(in.Kernel, withImage, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("replaceKernel: %v, want an error: %v", err, tt.wantErr)
			}
			sg.kept = err == nil && tt.kept
			sg.close(in, io.Discard)
			if !reflect.DeepEqual(loads, tt.wantLoads) || unloads != tt.unloads {
				t.Errorf("loads %q, %d unloads; want %q, %d", loads, unloads, tt.wantLoads, tt.unloads)
			}
		})
	}
}
