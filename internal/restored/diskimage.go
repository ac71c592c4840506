package restored

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/config"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/image"
)

// diskImage is an image directory of the disk store. The boot parameter
// only names it; it is used (and removed) only if it is a directory
// directly inside the disk directory that the real root's seamless.conf
// configures, reached without following a symlink, owned by root and
// writable by nobody else. Everything afterwards goes through the
// descriptors opened here, never through a path again.
type diskImage struct {
	path string   // the image directory's path in the real root
	dir  *os.File // the disk directory
	name string   // the image directory's name in it
	img  *os.File // the image directory
}

// openDiskImage opens the image that arg (the value of
// seamless.image=disk:PATH) names, on the real root mounted at root.
func openDiskImage(root, arg string) (*diskImage, error) {
	parsed, err := contract.ParseImage(arg)
	if err == nil && !parsed.Disk {
		err = fmt.Errorf("%q is not a disk image", arg)
	}
	if err != nil {
		return nil, err
	}
	p := parsed.Path
	cfg, err := config.Load(filepath.Join(root, config.Path))
	if err != nil {
		return nil, fmt.Errorf("the real root's configuration: %w", err)
	}
	diskDir := filepath.Clean(cfg.DiskDir)
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || filepath.Dir(p) != diskDir || diskDir == "/" {
		return nil, fmt.Errorf("image %q refused: an image on disk is a directory directly in the disk directory %s (disk-dir in %s), named by its plain path", p, diskDir, config.Path)
	}
	name := filepath.Base(p)
	if name == "." || name == ".." || name == "/" {
		return nil, fmt.Errorf("image %q refused: not a plain name", p)
	}
	rootf, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("the real root: %w", err)
	}
	defer rootf.Close()
	dir, err := openOwnedDir(rootf, strings.TrimPrefix(diskDir, "/"))
	if err != nil {
		return nil, fmt.Errorf("disk directory %s: %w", diskDir, err)
	}
	img, err := openOwnedDir(dir, name)
	if err != nil {
		dir.Close()
		return nil, fmt.Errorf("image %s: %w", p, err)
	}
	return &diskImage{path: p, dir: dir, name: name, img: img}, nil
}

// openOwnedDir opens the directory name below dir without following a
// symlink or leaving dir, and checks that root owns it and nobody else may
// write to it.
func openOwnedDir(dir *os.File, name string) (*os.File, error) {
	fd, err := unix.Openat2(int(dir.Fd()), name, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, fmt.Errorf("a symlink on the way: refused")
	case errors.Is(err, unix.ENOTDIR):
		return nil, fmt.Errorf("not a directory: refused")
	case errors.Is(err, unix.EXDEV):
		return nil, fmt.Errorf("leaves its parent directory: refused")
	case err != nil:
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, err
	}
	if st.Uid != 0 || st.Mode&0o022 != 0 {
		f.Close()
		return nil, fmt.Errorf("owned by uid %d with mode %#o: refused (it must be root's and writable by root alone)", st.Uid, st.Mode&0o7777)
	}
	return f, nil
}

// fdPath is the path through which the daemon reads a directory it holds
// open: no path of the real root is resolved again.
func fdPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }

// close releases the descriptors.
func (di *diskImage) close() {
	di.img.Close()
	di.dir.Close()
}

// remove deletes what seamless wrote of the image: in each unit directory,
// the files that a tree's MANIFEST lists, the MANIFEST and the unit's
// start record; then the directories, each only once empty. A file that no
// MANIFEST lists, and whatever does not parse as an image, stay where they
// are, with the directories that hold them; the error says what was left.
// Needs /proc (the daemon is in the real root).
func (di *diskImage) remove(log io.Writer) error {
	unitEnts, err := readDirFD(di.img)
	if err != nil {
		return fmt.Errorf("list %s: %w", di.path, err)
	}
	var left []string
	for _, ue := range unitEnts {
		if !ue.IsDir() {
			left = append(left, ue.Name())
			continue
		}
		if err := removeUnitDir(di.img, ue.Name()); err != nil {
			left = append(left, fmt.Sprintf("%s (%v)", ue.Name(), err))
		}
	}
	if err := unix.Unlinkat(int(di.dir.Fd()), di.name, unix.AT_REMOVEDIR); err != nil {
		if len(left) == 0 {
			left = append(left, err.Error())
		}
		return fmt.Errorf("%s left in place: %s", di.path, strings.Join(left, "; "))
	}
	fmt.Fprintf(log, "removed the image %s\n", di.path)
	return nil
}

// removeUnitDir removes one unit's directory of an image, as remove says.
func removeUnitDir(img *os.File, name string) error {
	ud, err := openOwnedDir(img, name)
	if err != nil {
		return err
	}
	defer ud.Close()
	treeEnts, err := readDirFD(ud)
	if err != nil {
		return err
	}
	ours := false
	var left []string
	for _, te := range treeEnts {
		if !te.IsDir() {
			continue // unit.json below, anything else stays
		}
		ok, err := removeTreeDir(ud, te.Name())
		ours = ours || ok
		if err != nil {
			left = append(left, fmt.Sprintf("%s: %v", te.Name(), err))
		}
	}
	if ours {
		if err := unix.Unlinkat(int(ud.Fd()), contract.StartFile, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			left = append(left, fmt.Sprintf("%s: %v", contract.StartFile, err))
		}
	}
	if err := unix.Unlinkat(int(img.Fd()), name, unix.AT_REMOVEDIR); err != nil {
		left = append(left, err.Error())
	}
	if len(left) > 0 {
		return errors.New(strings.Join(left, ", "))
	}
	return nil
}

// removeTreeDir removes one tree's image if its MANIFEST reads as one
// (ours), with the files it lists and nothing else.
func removeTreeDir(ud *os.File, name string) (ours bool, err error) {
	td, err := openOwnedDir(ud, name)
	if err != nil {
		return false, err
	}
	defer td.Close()
	im, err := image.ReadManifest(fdPath(td))
	if err != nil {
		return false, fmt.Errorf("not an image: %w", err)
	}
	for _, e := range im.Entries {
		if err := unix.Unlinkat(int(td.Fd()), e.Name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return true, fmt.Errorf("%s: %w", e.Name, err)
		}
	}
	if err := unix.Unlinkat(int(td.Fd()), image.ManifestName, 0); err != nil {
		return true, err
	}
	return true, unix.Unlinkat(int(ud.Fd()), name, unix.AT_REMOVEDIR)
}

// readDirFD lists the directory f holds open, from its start, without
// moving f's own offset.
func readDirFD(f *os.File) ([]os.DirEntry, error) {
	fd, err := unix.Openat(int(f.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(fd), f.Name())
	defer d.Close()
	return d.ReadDir(-1)
}
