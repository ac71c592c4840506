package pid1

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/seamless-linux/seamless/internal/contract"
)

// findRoot waits up to timeout for the block device that root= names
// (/dev/NAME, LABEL=, UUID=) and returns it with its file system type
// ("auto" if not recognized). A label or UUID is matched against the
// superblocks of ext2/3/4, XFS and Btrfs: there is no udev here, and no
// /dev/disk/by-*.
func findRoot(spec string, timeout time.Duration) (dev, fs string, err error) {
	if err := contract.RestorerRootSpec(spec); err != nil {
		return "", "", err
	}
	key, want, _ := strings.Cut(spec, "=")
	deadline := time.Now().Add(timeout)
	for {
		if dev, fs := find(spec, key, want); dev != "" {
			return dev, fs, nil
		}
		if time.Now().After(deadline) {
			return "", "", fmt.Errorf("no device for root=%s after %s", spec, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// find looks once for the device of spec.
func find(spec, key, want string) (dev, fs string) {
	if strings.HasPrefix(spec, "/dev/") {
		if _, err := os.Stat(spec); err != nil {
			return "", ""
		}
		return spec, fsType(spec)
	}
	names, _ := filepath.Glob("/sys/class/block/*")
	for _, n := range names {
		d := "/dev/" + filepath.Base(n)
		sb, err := probe(d)
		if err != nil {
			continue
		}
		if key == "LABEL" && sb.label == want || key == "UUID" && strings.EqualFold(sb.uuid, want) {
			return d, sb.fs
		}
	}
	return "", ""
}

func fsType(dev string) string {
	if sb, err := probe(dev); err == nil {
		return sb.fs
	}
	return "auto"
}

type superblock struct{ fs, label, uuid string }

// probe reads the superblock of a device.
func probe(dev string) (superblock, error) {
	f, err := os.Open(dev)
	if err != nil {
		return superblock{}, err
	}
	defer f.Close()
	b := make([]byte, 0x10000+4096)
	n, _ := io.ReadFull(f, b)
	return parseSuperblock(b[:n])
}

// parseSuperblock recognizes ext2/3/4, XFS and Btrfs from the first 68 KiB
// of a device.
func parseSuperblock(b []byte) (superblock, error) {
	at := func(off, n int) []byte {
		if off+n > len(b) {
			return nil
		}
		return b[off : off+n]
	}
	// ext2/3/4: superblock at 1024, magic 0xEF53 (little-endian) at 0x38;
	// the ext4 driver mounts all three.
	if m := at(1024+0x38, 2); m != nil && m[0] == 0x53 && m[1] == 0xEF {
		return superblock{fs: "ext4", uuid: uuid(at(1024+0x68, 16)), label: cstr(at(1024+0x78, 16))}, nil
	}
	if m := at(0, 4); m != nil && string(m) == "XFSB" {
		return superblock{fs: "xfs", uuid: uuid(at(32, 16)), label: cstr(at(108, 12))}, nil
	}
	if m := at(0x10000+0x40, 8); m != nil && string(m) == "_BHRfS_M" {
		return superblock{fs: "btrfs", uuid: uuid(at(0x10000+0x20, 16)), label: cstr(at(0x10000+0x12b, 256))}, nil
	}
	return superblock{}, fmt.Errorf("no file system recognized")
}

func uuid(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
