package update

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/bytesize"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/kernel"
	"github.com/seamless-linux/seamless/internal/kexec"
	"github.com/seamless-linux/seamless/internal/kmod"
	"github.com/seamless-linux/seamless/internal/mem"
	"github.com/seamless-linux/seamless/internal/store"
)

// The kmod store (docs/kmod.md): the checkpoint writes the image once, into
// a seamlessmem mounted as the stage, whose memory is taken out of the
// page allocator in pieces; the next kernel's command line reserves the
// memory blocks around them (memmap=), and its stage 1 loads the module
// appended to the initrd and finds the image.

// kmodNeed is the pool to take for an image of about image bytes: the
// estimate counts private memory; files, queues, metadata and the index
// come on top.
func kmodNeed(image int64) uint64 { return uint64(image + image/8 + 16<<20) }

// kmodSlack is the room the pool keeps beyond each write it is asked for
// (staging.reserve): every file write reserves its bytes, but a file's
// buffer, whole pages and the few files written without a reservation
// (the manifest, the unit's start record) come on top.
const kmodSlack = 4 << 20

// kmodOnTop is the memory the kmod store needs besides the services' own:
// their private memory moves into the pool as it is written (mem.Mover),
// so the pool holds at most a piece and a part more than it gives back,
// and the rest of the system keeps ramMargin.
func kmodOnTop() int64 {
	return kmod.PieceSize + mem.MovePart + kmodSlack + ramMargin
}

// giveBack gives the pool's memory behind ranges ({offset, length}) of the
// image file at path back to the system: on an abandoned update the services' moved
// memory is written back into them from the image (mem.Mover.PutBack), and
// the pool shrinks as they grow back. Only an image not handed over:
// unsealed first (a sealed pool's memory is the next kernel's).
func (sg *staging) giveBack(path string, ranges [][2]int64) error {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	if sg.kept {
		return errors.New("kmod store: the image was handed over to the next kernel")
	}
	info, err := sg.pool.Info()
	if err != nil {
		return err
	}
	if info.Sealed {
		if err := sg.pool.Unseal(); err != nil {
			return err
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("kmod store: %w", err)
	}
	defer f.Close()
	return kmod.ReleaseRanges(f, ranges)
}

// reserve makes room in the pool for n more bytes of image (and
// kmodSlack), taking pieces of memory: the checkpoint calls it before each
// part of a service's memory it writes, once the parts before have been
// dropped from the service and their memory is free to take.
func (sg *staging) reserve(n int64) error {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	info, err := sg.pool.Info()
	if err != nil {
		return err
	}
	want := info.UsedBytes + uint64(n) + kmodSlack
	if info.PoolBytes >= want {
		return nil
	}
	return sg.taker.Take(sg.pool, want, sg.log)
}

// kmodProblem says why the kmod store cannot be used for an update from
// the running kernel to release, or "" when it can.
func kmodProblem(from, release string) string {
	if _, err := kmod.BlockSize(kmod.SysMemory); err != nil {
		return err.Error()
	}
	for _, r := range []string{from, release} {
		if _, err := kmod.ModulePath(r); err != nil {
			return err.Error()
		}
	}
	p, _ := kmod.ModulePath(from)
	if err := kmod.LoadModule(p); err != nil {
		return err.Error()
	}
	return ""
}

// kmodExperimental is what plan and the preflight say of the kmod store
// whenever they choose it: its way of taking memory has few lab runs
// behind it, and the way before it oopsed Debian's 6.1.
const kmodExperimental = "warning: the kmod store is experimental: few lab runs since it takes memory in pieces with alloc_contig_range() (docs/kmod.md); if it fails, the services start cold"

// KmodPlan says, for `seamless plan` under store = kmod, whether the next
// update (to the newest installed kernel, from the running one) can use
// the kmod store, and if not why and what it uses instead.
func KmodPlan(boot string) string {
	from := kernel.Running()
	to := from
	if k, err := kernel.Pick(boot, "", "", from); err == nil {
		to = k.Release
	}
	if p := kmodProblem(from, to); p != "" {
		return fmt.Sprintf("image store: kmod store unavailable for %s -> %s: %s; the update uses the ram or disk store, as store = auto", from, to, p)
	}
	movable := "movable memory unknown"
	if m, err := kmod.MovableBytes(kmod.SysMemory, "/proc/iomem"); err == nil {
		movable = bytesize.Format(int64(m)) + " of movable memory can be taken"
		if m == 0 {
			movable += " (boot with movablecore=: memory of the kernel's own zones holds kernel allocations, which cannot move out of the way)"
		}
	}
	return fmt.Sprintf("image store: kmod (module built for %s and %s, loaded, memory hotplug present; %s)\n  %s", from, to, movable, kmodExperimental)
}

func newKmodStaging(in *contract.Intent, log io.Writer) (*staging, error) {
	if p := kmodProblem(in.From, in.Kernel.Release); p != "" {
		return nil, errors.New("kmod store: " + p)
	}
	avoid, err := kexecZones(in)
	if err != nil {
		return nil, err
	}
	taker, err := kmod.NewTaker(avoid)
	if err != nil {
		return nil, fmt.Errorf("kmod store: %w", err)
	}
	m, err := kmod.MountNew(contract.StageDir())
	if err != nil {
		return nil, err
	}
	// One piece is taken now, while the services hold their memory, the
	// rest during the checkpoint, as their memory moves into it
	// (staging.reserve): the memory the update takes besides the
	// services' stays near a piece and a part.
	if err := taker.Take(m, 1, log); err != nil {
		if !errors.Is(err, kmod.ErrMemoryShort) {
			m.Unmount()
			return nil, err
		}
		fmt.Fprintf(log, "seamless: %v: the rest is taken as the services' memory moves into the image\n", err)
	}
	dir := filepath.Join(m.Dir, "image")
	if err := os.Mkdir(dir, 0o700); err != nil {
		m.Unmount()
		return nil, fmt.Errorf("kmod store: %w", err)
	}
	return &staging{store: "kmod", dir: dir, pool: m, log: log, taker: taker}, nil
}

// kexecZones are the memory the kexec of in's kernel may copy its
// segments over (kmod.KexecZones): the kernel, its initrd and the module
// appended to it, the rest of a load.
func kexecZones(in *contract.Intent) ([]kmod.Range, error) {
	foot, err := kexec.Footprint(in.Kernel.Image, fileSize(in.Kernel.Initrd)+kmodArchiveSlack)
	if err != nil {
		return nil, fmt.Errorf("kmod store: %w", err)
	}
	ram, err := kmod.SystemRAM("/proc/iomem")
	if err != nil {
		return nil, fmt.Errorf("kmod store: %w", err)
	}
	return kmod.KexecZones(ram, foot), nil
}

// kmodArchiveSlack bounds the archive of the module appended to the
// initrd (the module is about 100 KiB).
const kmodArchiveSlack = 8 << 20

// seal writes the pool's index and returns what the next kernel's command
// line needs: the pool's reservations and the image parameter naming the
// index. The index needs contiguous room: one more piece if the pool has
// none left.
func (sg *staging) seal() (string, error) {
	log := sg.log
	err := sg.pool.Seal()
	if errors.Is(err, unix.ENOSPC) {
		info, ierr := sg.pool.Info()
		if ierr != nil {
			return "", ierr
		}
		if err = sg.taker.Take(sg.pool, info.PoolBytes+1, log); err == nil {
			err = sg.pool.Seal()
		}
	}
	if err != nil {
		return "", err
	}
	info, err := sg.pool.Info()
	if err != nil {
		return "", err
	}
	memmap, err := kmod.Reservations(info)
	if err != nil {
		return "", err
	}
	return memmap + " " + contract.Kmod(info.IndexPhys, len(info.Ranges)).Param(), nil
}

// kmodInitrd is the initrd the kmod store's image boots with: the
// restorer initramfs as it is when it holds the module (no copy of it
// while the services are frozen), else initrdWithModule.
func kmodInitrd(in *contract.Intent) (*os.File, error) {
	if !in.InitrdKmod {
		return initrdWithModule(in)
	}
	f, err := os.Open(in.Kernel.Initrd)
	if err != nil {
		return nil, fmt.Errorf("kmod store: the initrd: %w", err)
	}
	return f, nil
}

// initrdWithModule is the target kernel's initrd followed by the module
// built for it, where stage 1 loads it from (kmod.InitramfsModuleDir): it
// does not depend on the initramfs having been rebuilt since DKMS built
// the module.
func initrdWithModule(in *contract.Intent) (*os.File, error) {
	ko, err := kmod.ModulePath(in.Kernel.Release)
	if err != nil {
		return nil, fmt.Errorf("kmod store: %w", err)
	}
	b, err := os.ReadFile(ko)
	if err != nil {
		return nil, fmt.Errorf("kmod store: %w", err)
	}
	if err := os.MkdirAll(contract.RunDir, 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(contract.RunDir, "kmod-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, filepath.Base(ko)), b, 0o600); err != nil {
		return nil, err
	}
	return store.InitrdWith(in.Kernel.Initrd, tmp, kmod.InitramfsModuleDir, false)
}
