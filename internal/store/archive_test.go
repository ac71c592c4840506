package store

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/seamless-linux/seamless/internal/contract"
)

func TestWriteArchive(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "memcached.service", "1234"), 0o700)
	os.WriteFile(filepath.Join(dir, "memcached.service", "1234", "MANIFEST"), []byte("seamless-image 1\n"), 0o600)
	var buf bytes.Buffer
	if err := WriteArchive(&buf, dir, contract.RAMImageDir, true); err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(buf.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
		if r.Name == "seamless/image/memcached.service/1234/MANIFEST" {
			b, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
			if string(b) != "seamless-image 1\n" || r.Mode&0o777 != 0o600 {
				t.Fatalf("MANIFEST record: %q mode %o", b, r.Mode)
			}
			if _, err := os.Stat(filepath.Join(dir, "memcached.service", "1234", "MANIFEST")); !os.IsNotExist(err) {
				t.Fatalf("an archived file was not consumed: %v", err)
			}
			return
		}
	}
	t.Fatalf("archive lacks the MANIFEST: %v", names)
}

// The layout the new kernel unpacks quickly: the distro initrd unchanged,
// zeros up to a 512-byte boundary, then an uncompressed newc archive
// without checksums ("070701": with "070702" the kernel sums every byte),
// parents before children, and a trailer.
func TestInitrdWithImageLayout(t *testing.T) {
	for _, n := range []int{1, 511, 512, 4099} {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "memcached.service", "1234"), 0o700)
		os.WriteFile(filepath.Join(dir, "memcached.service", "1234", "pages-0.img"), bytes.Repeat([]byte{7}, 10000), 0o600)
		distro := bytes.Repeat([]byte{0x28}, n)
		initrd := filepath.Join(t.TempDir(), "initrd.img")
		os.WriteFile(initrd, distro, 0o600)
		f, err := InitrdWithImage(initrd, dir, false)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		start := (n + 511) / 512 * 512
		if !bytes.Equal(b[:n], distro) || !bytes.Equal(b[n:start], make([]byte, start-n)) {
			t.Fatalf("initrd of %d bytes: the distro part or its padding changed", n)
		}
		archive := b[start:]
		if string(archive[:6]) != "070701" {
			t.Fatalf("initrd of %d bytes: the image starts with %q, want a newc header without checksums", n, archive[:6])
		}
		if c := bytes.Count(archive, []byte("070702")); c != 0 {
			t.Errorf("%d headers with checksums", c)
		}
		recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(archive)))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		var names []string
		for _, r := range recs {
			if p := filepath.Dir(r.Name); p != "." && !seen[p] {
				t.Errorf("%s comes before its directory", r.Name)
			}
			seen[r.Name] = true
			names = append(names, r.Name)
		}
		want := []string{"seamless", "seamless/image", "seamless/image/memcached.service", "seamless/image/memcached.service/1234", "seamless/image/memcached.service/1234/pages-0.img"}
		if len(names) != len(want) {
			t.Fatalf("records %v, want %v", names, want)
		}
		if !bytes.Contains(archive, []byte("TRAILER!!!")) {
			t.Error("no trailer")
		}
	}
}
