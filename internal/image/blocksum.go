package image

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// BlockSize is the unit of an image file's checksum. Each block is
// checksummed on its own (CRC-32C) and the file's checksum is the CRC-32C of
// the block checksums, so that large files are written and verified on
// every CPU at once.
const BlockSize = 4 << 20

// blockSum accumulates the checksum of a file written sequentially.
type blockSum struct {
	sums []byte
	cur  uint32
	n    int // bytes in the current block
}

func (b *blockSum) Write(p []byte) {
	for len(p) > 0 {
		k := min(len(p), BlockSize-b.n)
		b.cur = crcUpdate(b.cur, p[:k])
		b.n += k
		p = p[k:]
		if b.n == BlockSize {
			b.flush()
		}
	}
}

func (b *blockSum) flush() {
	b.sums = binary.LittleEndian.AppendUint32(b.sums, b.cur)
	b.cur, b.n = 0, 0
}

// Sum returns the file checksum.
func (b *blockSum) Sum() uint32 {
	if b.n > 0 {
		b.flush()
	}
	return crcChecksum(b.sums)
}

// combine turns per-block checksums into the file checksum.
func combine(blocks []uint32) uint32 {
	b := make([]byte, 0, 4*len(blocks))
	for _, s := range blocks {
		b = binary.LittleEndian.AppendUint32(b, s)
	}
	return crcChecksum(b)
}

// BlockFile is an image file of known size whose blocks are filled in any
// order, from several goroutines at once.
type BlockFile struct {
	w      *Writer
	name   string
	f      *os.File
	size   int64
	mu     sync.Mutex
	blocks []uint32
	done   []bool
}

// CreateSized creates an image file of exactly size bytes, to be filled
// block by block with WriteBlock.
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
	return &BlockFile{w: w, name: name, f: f, size: size, blocks: make([]uint32, n), done: make([]bool, n)}, nil
}

// Blocks is the number of blocks of the file.
func (b *BlockFile) Blocks() int { return len(b.blocks) }

// BlockLen is the length of block i (the last one may be short).
func (b *BlockFile) BlockLen(i int) int {
	return int(min(BlockSize, b.size-int64(i)*BlockSize))
}

// WriteBlock stores block i, which must be exactly BlockLen(i) bytes.
func (b *BlockFile) WriteBlock(i int, p []byte) error {
	if len(p) != b.BlockLen(i) {
		return fmt.Errorf("write %s block %d: %d bytes, want %d", b.name, i, len(p), b.BlockLen(i))
	}
	if _, err := b.f.WriteAt(p, int64(i)*BlockSize); err != nil {
		return fmt.Errorf("write %s: %w", b.name, err)
	}
	sum := crcChecksum(p)
	b.mu.Lock()
	b.blocks[i], b.done[i] = sum, true
	b.mu.Unlock()
	return nil
}

// Close syncs the file and records its checksum; every block must have
// been written.
func (b *BlockFile) Close() error {
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
	b.w.add(Entry{Name: b.name, Size: b.size, CRC: combine(b.blocks)})
	return nil
}

// sumFile computes the checksum of the first size bytes of an image
// file, reading its blocks on every CPU.
func sumFile(f *os.File, size int64, each func(int, func(int) error) error) (uint32, error) {
	n := int((size + BlockSize - 1) / BlockSize)
	blocks := make([]uint32, n)
	bufs := sync.Pool{New: func() any { b := make([]byte, BlockSize); return &b }}
	err := each(n, func(i int) error {
		bp := bufs.Get().(*[]byte)
		defer bufs.Put(bp)
		buf := *bp
		k := int(min(BlockSize, size-int64(i)*BlockSize))
		if _, err := f.ReadAt(buf[:k], int64(i)*BlockSize); err != nil {
			if err == io.EOF {
				err = fmt.Errorf("%w: the file shrank while it was read", ErrCorrupt)
			}
			return err
		}
		blocks[i] = crcChecksum(buf[:k])
		return nil
	})
	if err != nil {
		return 0, err
	}
	return combine(blocks), nil
}
