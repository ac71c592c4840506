package restorer

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/kmod"
)

// Build writes the restorer initramfs of img to w as an uncompressed cpio
// archive (the kernel unpacks it with no decompressor to run): exe, the
// seamless binary, as /init and as stage 1's program, the modules and
// their list, and the seamlessmem module when img has one.
func Build(w io.Writer, img *Image, exe string) error {
	rw := cpio.Newc.Writer(w)
	for _, d := range []string{"bin", "dev", "etc", "etc/seamless", "lib", "lib/modules", "newroot", "proc", "run", "sys"} {
		if err := rw.WriteRecord(cpio.Directory(d, 0o755)); err != nil {
			return err
		}
	}
	// The kernel opens /dev/console for PID 1 before devtmpfs is mounted.
	if err := rw.WriteRecord(cpio.CharDev("dev/console", 0o600, 5, 1)); err != nil {
		return err
	}
	if err := addFile(rw, exe, "init", 0o755); err != nil {
		return err
	}
	if err := rw.WriteRecord(cpio.Symlink(strings.TrimPrefix(contract.RestorerStage1, "/"), "/init")); err != nil {
		return err
	}
	// One line per module: its file, then the files it needs first.
	var list strings.Builder
	for _, m := range img.Modules {
		name := filepath.Base(m)
		if err := addFile(rw, filepath.Join(img.ModDir, m), filepath.Join(strings.TrimPrefix(contract.RestorerModuleDir, "/"), name), 0o644); err != nil {
			return err
		}
		list.WriteString(name)
		for _, d := range img.Needs[m] {
			list.WriteString(" " + filepath.Base(d))
		}
		list.WriteString("\n")
	}
	if err := rw.WriteRecord(cpio.StaticFile(strings.TrimPrefix(contract.RestorerModules, "/"), list.String(), 0o644)); err != nil {
		return err
	}
	if img.Kmod != "" {
		for _, d := range []string{filepath.Dir(kmod.InitramfsModuleDir), kmod.InitramfsModuleDir} {
			if err := rw.WriteRecord(cpio.Directory(d, 0o755)); err != nil {
				return err
			}
		}
		if err := addFile(rw, img.Kmod, filepath.Join(kmod.InitramfsModuleDir, filepath.Base(img.Kmod)), 0o644); err != nil {
			return err
		}
	}
	return cpio.WriteTrailer(rw)
}

// addFile archives the regular file at path as name.
func addFile(rw cpio.RecordWriter, path, name string, perm uint64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	// What the new kernel runs as PID 1 or loads into itself: root's
	// files only.
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || sys.Uid != 0 || st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is not root's alone (owner or mode %v): not put into the restorer initramfs", path, st.Mode().Perm())
	}
	rec := cpio.Record{ReaderAt: f, Info: cpio.Info{Name: name, Mode: unix.S_IFREG | perm, FileSize: uint64(st.Size()), NLink: 1}}
	if err := rw.WriteRecord(rec); err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	return nil
}

// WriteFile builds img into a new root-only file at path, replacing what
// was there only once the whole image is written.
func WriteFile(path string, img *Image, exe string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".restorer-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename: nothing
	if err := Build(f, img, exe); err != nil {
		f.Close()
		return fmt.Errorf("build the restorer initramfs: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
