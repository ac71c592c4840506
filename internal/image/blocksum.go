package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// BlockSize is the unit of an image file's checksum. Each block is
// checksummed on its own and the file's checksum is the checksum of the
// block checksums (checksum.combine), so that large files are written and
// verified on every CPU at once.
const BlockSize = 4 << 20

// written is the checksum of the images this build writes (Version).
var written = checksumOf(Version)

// blockSum accumulates the checksum (written, XXH64) of a file written
// sequentially.
type blockSum struct {
	blocks []uint64
	cur    *xxhash.Digest
	n      int // bytes in the current block
}

func (b *blockSum) Write(p []byte) {
	if b.cur == nil {
		b.cur = xxhash.New()
	}
	for len(p) > 0 {
		k := min(len(p), BlockSize-b.n)
		b.cur.Write(p[:k])
		b.n += k
		p = p[k:]
		if b.n == BlockSize {
			b.flush()
		}
	}
}

func (b *blockSum) flush() {
	b.blocks = append(b.blocks, b.cur.Sum64())
	b.cur.Reset()
	b.n = 0
}

// Sum returns the file checksum.
func (b *blockSum) Sum() uint64 {
	if b.n > 0 {
		b.flush()
	}
	return written.combine(b.blocks)
}

// BlockFile is an image file of known size whose blocks are filled in any
// order, from several goroutines at once.
type BlockFile struct {
	w      *Writer
	name   string
	f      *os.File
	size   int64
	mu     sync.Mutex
	blocks []uint64
	done   []bool
	// mapped is the file's own memory where blocks are filled in place
	// (see Writer.inPlace), else nil.
	mapped []byte
	bufs   sync.Pool
}

// CreateSized creates an image file of exactly size bytes, to be filled
// block by block with Fill.
func (w *Writer) CreateSized(name string, size int64) (*BlockFile, error) {
	f, err := w.createFile(name, unix.O_RDWR)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("size %s: %w", name, err)
	}
	n := int((size + BlockSize - 1) / BlockSize)
	b := &BlockFile{w: w, name: name, f: f, size: size, blocks: make([]uint64, n), done: make([]bool, n)}
	b.bufs.New = func() any { p := make([]byte, BlockSize); return &p }
	if w.inPlace && size > 0 {
		if m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err == nil {
			// MADV_POPULATE_WRITE (Linux 5.14) is what turns a full
			// tmpfs into an error rather than a fault: without it,
			// the file is written through buffers.
			if populateWriteWorks(m) {
				b.mapped = m
			} else {
				unix.Munmap(m)
			}
		}
	}
	return b, nil
}

// populateWriteWorks asks the kernel whether it knows MADV_POPULATE_WRITE
// with an empty range of m (unix.Madvise would pass another address).
func populateWriteWorks(m []byte) bool {
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(unsafe.Pointer(&m[0])), 0, unix.MADV_POPULATE_WRITE)
	return errno == 0
}

// Blocks is the number of blocks of the file.
func (b *BlockFile) Blocks() int { return len(b.blocks) }

// BlockLen is the length of block i (the last one may be short).
func (b *BlockFile) BlockLen(i int) int {
	return int(min(BlockSize, b.size-int64(i)*BlockSize))
}

// Fill stores block i, which fill writes into the BlockLen(i) bytes it is
// given: the file's own pages where they are mapped, so that the data is
// copied once, else a buffer then written into the file.
func (b *BlockFile) Fill(i int, fill func(p []byte) error) error {
	if i < 0 || i >= len(b.blocks) {
		return fmt.Errorf("write %s: no block %d", b.name, i)
	}
	if b.mapped == nil {
		bp := b.bufs.Get().(*[]byte)
		defer b.bufs.Put(bp)
		p := (*bp)[:b.BlockLen(i)]
		if err := fill(p); err != nil {
			return err
		}
		return b.writeBlock(i, p)
	}
	off := int64(i) * BlockSize
	p := b.mapped[off : off+int64(b.BlockLen(i))]
	// The pages are allocated first: written through the mapping, a page
	// the tmpfs has no room for would be a fault, not an error.
	if err := unix.Madvise(p, unix.MADV_POPULATE_WRITE); err != nil {
		return fmt.Errorf("write %s block %d: %w", b.name, i, err)
	}
	if err := fill(p); err != nil {
		return err
	}
	sum, err := checksumMapped(p, written)
	if err != nil {
		return fmt.Errorf("write %s block %d: %w", b.name, i, err)
	}
	b.mark(i, sum)
	return nil
}

// writeBlock stores block i, which must be exactly BlockLen(i) bytes, at
// its place in the file.
func (b *BlockFile) writeBlock(i int, p []byte) error {
	if len(p) != b.BlockLen(i) {
		return fmt.Errorf("write %s block %d: %d bytes, want %d", b.name, i, len(p), b.BlockLen(i))
	}
	if _, err := b.f.WriteAt(p, int64(i)*BlockSize); err != nil {
		return fmt.Errorf("write %s: %w", b.name, err)
	}
	b.mark(i, written.sum(p))
	return nil
}

func (b *BlockFile) mark(i int, sum uint64) {
	b.mu.Lock()
	b.blocks[i], b.done[i] = sum, true
	b.mu.Unlock()
}

// Close syncs the file and records its checksum; every block must have
// been written.
func (b *BlockFile) Close() error {
	if b.mapped != nil {
		unix.Munmap(b.mapped)
		b.mapped = nil
	}
	err := b.f.Sync()
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close %s: %w", b.name, err)
	}
	for i, d := range b.done {
		if !d {
			return fmt.Errorf("close %s: block %d was never written", b.name, i)
		}
	}
	b.w.add(Entry{Name: b.name, Size: b.size, Sum: written.combine(b.blocks)})
	return nil
}

// sumFile computes the checksum sums of the first size bytes of an image
// file, its blocks on every CPU, through a mapping of the file where it
// can be mapped: reading it into buffers would copy every byte once more.
func sumFile(f *os.File, size int64, sums checksum, each func(int, func(int) error) error) (uint64, error) {
	n := int((size + BlockSize - 1) / BlockSize)
	blocks := make([]uint64, n)
	block := readBlocks(f, size, sums)
	if size > 0 {
		if m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED); err == nil {
			defer unix.Munmap(m)
			unix.Madvise(m, unix.MADV_SEQUENTIAL)
			block = func(i int) (uint64, error) {
				off := int64(i) * BlockSize
				return checksumMapped(m[off:min(off+BlockSize, size)], sums)
			}
		}
	}
	err := each(n, func(i int) (err error) {
		blocks[i], err = block(i)
		return err
	})
	if err != nil {
		return 0, err
	}
	return sums.combine(blocks), nil
}

// readBlocks returns the checksum of block i of f read into a buffer.
func readBlocks(f *os.File, size int64, sums checksum) func(i int) (uint64, error) {
	bufs := sync.Pool{New: func() any { b := make([]byte, BlockSize); return &b }}
	return func(i int) (uint64, error) {
		bp := bufs.Get().(*[]byte)
		defer bufs.Put(bp)
		buf := (*bp)[:min(BlockSize, size-int64(i)*BlockSize)]
		if _, err := f.ReadAt(buf, int64(i)*BlockSize); err != nil {
			if err == io.EOF {
				err = errShrank
			}
			return 0, err
		}
		return sums.sum(buf), nil
	}
}

var errShrank = fmt.Errorf("%w: the file shrank while it was read", ErrCorrupt)

// checksumMapped is the checksum sums of mapped file pages. If the file
// shrank under the mapping, reading past its new end faults: that is
// returned as ErrCorrupt instead of ending the process.
func checksumMapped(p []byte, sums checksum) (sum uint64, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); !fault {
				panic(r)
			}
			err = errShrank
		}
	}()
	return sums.sum(p), nil
}

// BlockSums are the checksums of the blocks written so far (0 for the
// others), to check them when they are read back (ReadBlock).
func (b *BlockFile) BlockSums() []uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]uint64(nil), b.blocks...)
}

// ReadBlock reads block i of the image file f into p (BlockSize bytes, or
// fewer for the last block) and checks it against sum, a checksum of
// BlockSums: what a checkpoint takes back from its own image must be what
// it wrote.
func ReadBlock(f *os.File, i int, p []byte, sum uint64) error {
	n, err := f.ReadAt(p, int64(i)*BlockSize)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(p)) {
		return fmt.Errorf("read %s block %d: %w", f.Name(), i, err)
	}
	if written.sum(p) != sum {
		return fmt.Errorf("read %s block %d: checksum mismatch", f.Name(), i)
	}
	return nil
}

// Path is where the file is.
func (b *BlockFile) Path() string { return b.f.Name() }
