// Package store carries images across the kexec: in RAM, as a newc
// archive appended to the initrd that kexec_file_load hands to the new
// kernel (which unpacks it into its initramfs), or on disk, in a root-only
// directory.
package store

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/contract"
)

// WriteArchive writes the files below dir as a newc archive in which they
// sit under prefix, directories 0700 and files 0600. With consume, each
// file is removed once it is in the archive: an image staged in memory is
// then never held twice while it moves into the archive.
func WriteArchive(w io.Writer, dir, prefix string, consume bool) error {
	rw := cpio.Newc.Writer(w)
	var parts []string
	for p := prefix; p != "." && p != "/" && p != ""; p = path.Dir(p) {
		parts = append([]string{p}, parts...)
	}
	for _, p := range parts {
		if err := rw.WriteRecord(cpio.Directory(p, 0o700)); err != nil {
			return err
		}
	}
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("archive %s: %w", dir, err)
	}
	sort.Strings(files)
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		name := path.Join(prefix, filepath.ToSlash(rel))
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if st.IsDir() {
			if err := rw.WriteRecord(cpio.Directory(name, 0o700)); err != nil {
				return err
			}
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		rec := cpio.Record{ReaderAt: f, Info: cpio.Info{Name: name, Mode: unix.S_IFREG | 0o600, FileSize: uint64(st.Size()), NLink: 1}}
		err = rw.WriteRecord(rec)
		f.Close()
		if err != nil {
			return fmt.Errorf("archive %s: %w", p, err)
		}
		if consume {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("archive %s: %w", p, err)
			}
		}
	}
	return cpio.WriteTrailer(rw)
}

// InitrdWithImage returns a memory file holding the distro initrd followed
// by the image archive, ready for kexec_file_load. The kernel unpacks
// concatenated archives in order; the image starts 4-byte aligned as the
// format requires. With consume, the image's files are removed from dir as
// they are archived (see WriteArchive).
func InitrdWithImage(initrd, dir string, consume bool) (*os.File, error) {
	return InitrdWith(initrd, dir, contract.RAMImageDir, consume)
}

// InitrdWith is InitrdWithImage with the files of dir under prefix.
func InitrdWith(initrd, dir, prefix string, consume bool) (*os.File, error) {
	fd, err := unix.MemfdCreate("seamless-initrd", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("initrd with image: %w", err)
	}
	out := os.NewFile(uintptr(fd), "seamless-initrd")
	in, err := os.Open(initrd)
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("initrd with image: %w", err)
	}
	n, err := io.Copy(out, in)
	in.Close()
	if err == nil && n%512 != 0 {
		_, err = out.Write(make([]byte, 512-n%512))
	}
	if err == nil {
		err = WriteArchive(out, dir, prefix, consume)
	}
	if err == nil {
		_, err = out.Seek(0, io.SeekStart)
	}
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("initrd with image: %w", err)
	}
	return out, nil
}
