package contract

import (
	"fmt"
	"strconv"
	"strings"
)

// ImageParam is the kernel command-line parameter that tells the new
// kernel where the image is: RAMImage, where the RAM store's archive
// unpacks in its initramfs, "disk:PATH", an image directory of the disk
// store on the real root, or "kmod:ADDR,N", the physical address of the
// index of the kmod store's seamlessmem (docs/kmod.md) and the number of
// memmap= reservations of its memory written right before it.
const ImageParam = "seamless.image"

// RAMImageDir is where the RAM store's archive puts the image, relative to
// the root of the new kernel's initramfs.
const RAMImageDir = "seamless/image"

// RAMImage is the only directory seamless.image= may name in the
// initramfs.
const RAMImage = "/" + RAMImageDir

const (
	diskPrefix = "disk:"
	kmodPrefix = "kmod:"
)

// Image is where seamless.image= says the image is. It only names the
// image: the new kernel takes an image on disk only from the configured
// disk directory, and checks who owns it.
type Image struct {
	// Disk says that Path is an image directory of the disk store on the
	// real root; otherwise Path is a directory of the running system (on
	// the kernel command line, RAMImage alone: ParseBootImage).
	Disk bool
	Path string
	// KmodIndex, when not 0, says that the image is in the kmod store's
	// memory: the physical address of the seamlessmem index that stage 1
	// mounts it from (Path is then empty).
	KmodIndex uint64
	// KmodRanges is the number of memmap= reservations that precede the
	// parameter on the command line: the next update drops those, and
	// only those.
	KmodRanges int
}

// RAM is the image of the RAM store.
func RAM() Image { return Image{Path: RAMImage} }

// Disk is the image directory dir of the disk store.
func Disk(dir string) Image { return Image{Disk: true, Path: dir} }

// Kmod is the image of the kmod store whose seamlessmem index is at the
// physical address index, its memory reserved by the ranges memmap=
// parameters written right before it.
func Kmod(index uint64, ranges int) Image { return Image{KmodIndex: index, KmodRanges: ranges} }

// String is the parameter's value: "disk:PATH", "kmod:ADDR,N", or
// RAMImage.
func (i Image) String() string {
	if i.KmodIndex != 0 {
		return fmt.Sprintf("%s%#x,%d", kmodPrefix, i.KmodIndex, i.KmodRanges)
	}
	if i.Disk {
		return diskPrefix + i.Path
	}
	return i.Path
}

// Param is the command-line parameter naming i.
func (i Image) Param() string { return ImageParam + "=" + i.String() }

// ParseImage parses a value of seamless.image=: "disk:PATH", "kmod:ADDR,N",
// or any other directory (the restore daemon's --image, which tests point at
// images of their own). The kernel command line is read with
// ParseBootImage.
func ParseImage(v string) (Image, error) {
	if p, ok := strings.CutPrefix(v, diskPrefix); ok {
		if p == "" {
			return Image{}, fmt.Errorf("%s=%s names no image directory", ImageParam, v)
		}
		return Disk(p), nil
	}
	if a, ok := strings.CutPrefix(v, kmodPrefix); ok {
		addr, count, _ := strings.Cut(a, ",")
		index, err := strconv.ParseUint(addr, 0, 64)
		n, nerr := strconv.Atoi(count)
		if err != nil || index == 0 || nerr != nil || n < 1 || n > maxKmodRanges {
			return Image{}, fmt.Errorf("%s=%s names no seamlessmem index and its reservations (kmod:ADDR,N)", ImageParam, v)
		}
		return Kmod(index, n), nil
	}
	if v == "" {
		return Image{}, fmt.Errorf("%s= names no image", ImageParam)
	}
	return Image{Path: v}, nil
}

// ParseBootImage parses the value of seamless.image= on the kernel command
// line: an image in RAM is taken from RAMImage only.
func ParseBootImage(v string) (Image, error) {
	img, err := ParseImage(v)
	if err == nil && !img.Disk && img.KmodIndex == 0 && img.Path != RAMImage {
		err = fmt.Errorf("%s=%s is not where the RAM store puts an image (%s)", ImageParam, v, RAMImage)
	}
	return img, err
}

// ImageFromCmdline returns the value of the last seamless.image= of a
// kernel command line, or "" when it has none (a normal boot).
func ImageFromCmdline(cmdline string) string {
	v := ""
	for _, f := range strings.Fields(cmdline) {
		if s, ok := strings.CutPrefix(f, ImageParam+"="); ok {
			v = s
		}
	}
	return v
}

// maxKmodRanges bounds N in kmod:ADDR,N: the pool's ranges are few (the
// module merges its blocks' ranges, at most 64).
const maxKmodRanges = 64

// WithoutKmodReservations drops from a kernel command line the memmap=
// reservations that a kmod-store update put right before its
// seamless.image=kmod:ADDR,N (N of them): that memory went back to the
// system once the image was restored, and the next kernel must not lose
// it. The user's own memmap= stay, even one written right before them.
func WithoutKmodReservations(cmdline string) string {
	var keep []string
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, ImageParam+"="); ok && strings.HasPrefix(v, kmodPrefix) {
			img, err := ParseImage(v)
			for n := 0; err == nil && n < img.KmodRanges && len(keep) > 0 && isReservation(keep[len(keep)-1]); n++ {
				keep = keep[:len(keep)-1]
			}
		}
		keep = append(keep, f)
	}
	return strings.Join(keep, " ")
}

// isReservation reports whether f is a memmap=SIZE$ADDR parameter, the
// form a kmod-store update writes.
func isReservation(f string) bool {
	v, ok := strings.CutPrefix(f, "memmap=")
	return ok && strings.Contains(v, "$")
}
