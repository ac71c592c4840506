package mem

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// Contents describes files by reference and stores the contents of deleted
// ones in the image, once per file.
type Contents struct {
	W    *image.Writer
	seen map[[2]uint64]*image.Ref
	buf  []byte
}

// NewContents returns a Contents writing into w.
func NewContents(w *image.Writer) *Contents {
	return &Contents{W: w, seen: map[[2]uint64]*image.Ref{}}
}

// Ref describes the file that the open-able path handle refers to (a
// /proc/PID/fd/N or map_files link). name is the path the kernel reports
// for it; deleted says the kernel marked it deleted.
func (c *Contents) Ref(handle, name string, deleted bool) (*image.Ref, error) {
	f, err := os.Open(handle)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	return c.RefFile(f, name, deleted)
}

// RefFile is Ref for an already open file.
func (c *Contents) RefFile(f *os.File, name string, deleted bool) (*image.Ref, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", name, err)
	}
	key := [2]uint64{st.Dev, st.Ino}
	if r, ok := c.seen[key]; ok {
		return r, nil
	}
	r := &image.Ref{Path: name, Size: st.Size, Mode: st.Mode, Inode: st.Ino}
	if deleted || st.Nlink == 0 {
		r.Deleted = true
		r.Contents = fmt.Sprintf("file-%d.img", len(c.seen)+1)
		out, err := c.W.Create(r.Contents)
		if err != nil {
			return nil, err
		}
		if c.buf == nil {
			c.buf = make([]byte, 1<<20)
		}
		if _, err := io.CopyBuffer(out, io.NewSectionReader(f, 0, st.Size), c.buf); err != nil {
			out.Close()
			return nil, fmt.Errorf("save deleted file %s: %w", name, err)
		}
		if err := out.Close(); err != nil {
			return nil, err
		}
	}
	c.seen[key] = r
	return r, nil
}
