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
