package kmod

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/kernel"
	"github.com/seamless-linux/seamless/internal/proc"
)

// ModulesDir is where each kernel's modules are installed.
var ModulesDir = "/lib/modules"

// moduleDirs are where a module built outside the kernel lands, below
// ModulesDir/RELEASE: DKMS's Debian default first.
var moduleDirs = []string{"updates/dkms", "updates", "extra", "kernel/extra"}

// moduleExts are the module file names DKMS makes: compressed as the
// kernel's own modules are (6.12 and 7.3: xz), which finit_module
// decompresses (CONFIG_MODULE_DECOMPRESS).
var moduleExts = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"}

// ModulePath finds the seamlessmem module built for the kernel release.
func ModulePath(release string) (string, error) { return ModuleIn(ModulesDir, release) }

// ModuleIn finds the seamlessmem module built for the kernel release in
// the module tree below modules.
func ModuleIn(modules, release string) (string, error) {
	for _, d := range moduleDirs {
		for _, ext := range moduleExts {
			p := filepath.Join(modules, release, d, FSType+ext)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("no %s module built for kernel %s (DKMS builds it when linux-headers-%s is installed; `dkms status` shows what is built)", FSType, release, release)
}

// Loaded reports whether the running kernel has the filesystem.
func Loaded() bool {
	b, err := os.ReadFile("/proc/filesystems")
	return err == nil && hasFS(string(b), FSType)
}

func hasFS(filesystems, name string) bool {
	for _, line := range strings.Split(filesystems, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == name {
			return true
		}
	}
	return false
}

// LoadModule loads the module file into the running kernel; one already
// loaded is fine. The kernel's refusal (an unsigned module under lockdown,
// a module built for another kernel) is named.
func LoadModule(path string) error {
	if Loaded() {
		return nil
	}
	err := kernel.LoadModule(path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EKEYREJECTED), errors.Is(err, unix.EPERM):
		return fmt.Errorf("load %s: the kernel refused it: %w (unsigned, or signed by a key the kernel does not trust, under lockdown or module signature enforcement)", path, err)
	case errors.Is(err, unix.ENOEXEC), errors.Is(err, unix.EINVAL):
		return fmt.Errorf("load %s: the kernel refused it: %w (built for another kernel? see the kernel log)", path, err)
	}
	return fmt.Errorf("load %s: %w", path, err)
}

// ErrMemoryShort is Taker.Take's refusal to take a piece that would leave the
// rest of the system less than its floor of available memory (MemTotal/32,
// at least 64 MiB): taking memory migrates what is in use there into free
// memory, and the system needs room to go on.
var ErrMemoryShort = errors.New("not enough available memory to take more")

// Taker grows pools. What it reads of the system (the memory blocks, the
// System RAM, the memory floor) is read once, when it is made: the
// checkpoint asks for room before every part of the services' memory it
// writes, while they are frozen, and nothing it does changes those.
type Taker struct {
	bs     uint64
	blocks []Block
	ram    []Range
	avoid  []Range
	floor  int64
}

// NewTaker reads the system for Take, which will never take memory in a
// memory block that touches avoid (KexecZones).
func NewTaker(avoid []Range) (*Taker, error) {
	bs, blocks, err := Blocks(SysMemory)
	if err != nil {
		return nil, err
	}
	ram, err := SystemRAM("/proc/iomem")
	if err != nil {
		return nil, err
	}
	floor := max(64<<20, proc.Meminfo("MemTotal")/32)
	return &Taker{bs: bs, blocks: blocks, ram: ram, avoid: avoid, floor: floor}, nil
}

// Take grows the pool of m until it holds at least need bytes, a piece
// (PieceSize) at a time (see Candidates). Pieces the kernel cannot take (a
// page there cannot move) are skipped. It fails, naming how much it got,
// when no piece is left to try, and with ErrMemoryShort when memory is too
// short for the next one; the caller then unmounts, which gives every
// piece back, or (a checkpoint moving memory into the pool) tries again
// once more memory is free.
func (t *Taker) Take(m *Mount, need uint64, log io.Writer) error {
	unit := min(uint64(PieceSize), t.bs)
	failed := map[uint64]bool{}
	for {
		info, err := m.Info()
		if err != nil {
			return err
		}
		if info.PoolBytes >= need {
			return nil
		}
		if avail := proc.Meminfo("MemAvailable"); avail > 0 && avail < int64(unit)+t.floor {
			return fmt.Errorf("kmod store: %w (%d MiB of the %d MiB needed taken, %d MiB available, %d MiB are left to the system)",
				ErrMemoryShort, info.PoolBytes>>20, need>>20, avail>>20, t.floor>>20)
		}
		// The next kernel's KASLR avoids at most four memmap= ranges.
		cands := Candidates(t.bs, unit, t.blocks, t.ram, info.Ranges, t.avoid, failed, 4)
		if len(cands) == 0 {
			return fmt.Errorf("kmod store: only %d MiB of the %d MiB needed could be taken out of the system (%d pieces refused: kernel allocations in them)",
				info.PoolBytes>>20, need>>20, len(failed))
		}
		if err := m.TakeRange(cands[0], unit); err != nil {
			failed[cands[0]] = true
			if !errors.Is(err, unix.EBUSY) {
				fmt.Fprintf(log, "seamless: %v: skipped\n", err)
			}
		}
	}
}

// Reservations are what the next kernel's command line needs, besides
// the image parameter (contract.Kmod(IndexPhys, len(Ranges))), for the sealed pool
// described by info: one memmap=SIZE$ADDR per range, which keeps the
// kernel off them from its first instruction. They come right before the
// image parameter (contract.WithoutKmodReservations drops them from the
// command line of the update after).
func Reservations(info Info) (string, error) {
	if !info.Sealed || info.IndexPhys == 0 {
		return "", errors.New("kmod store: the pool is not sealed")
	}
	var r []string
	for _, rg := range info.Ranges {
		r = append(r, fmt.Sprintf("memmap=%#x$%#x", rg.Size, rg.Phys))
	}
	return strings.Join(r, " "), nil
}

// InitramfsModuleDir is where the old kernel puts the module built for
// the new one (its file name as DKMS made it), in the archive it appends
// to the new kernel's initrd.
const InitramfsModuleDir = "seamless/kmod"

// InitramfsModule finds the module in the initramfs' InitramfsModuleDir
// below root.
func InitramfsModule(root string) (string, error) {
	for _, ext := range moduleExts {
		p := filepath.Join(root, InitramfsModuleDir, FSType+ext)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no %s module in %s", FSType, filepath.Join(root, InitramfsModuleDir))
}
