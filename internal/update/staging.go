package update

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/seamless-linux/seamless/internal/config"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/kernel"
	"github.com/seamless-linux/seamless/internal/kexec"
	"github.com/seamless-linux/seamless/internal/kmod"
	"github.com/seamless-linux/seamless/internal/store"
)

// staging is where a checkpoint at shutdown writes the image: straight into
// a new directory of the disk store (on disk, never through /run); for
// the RAM store, into a tmpfs of its own (store.Stage), sized for the image
// rather than by /run; for the kmod store, into a seamlessmem whose memory
// is out of the system (kmodstore.go).
type staging struct {
	store string
	dir   string // the image: one directory per unit
	stage *store.Stage
	pool  *kmod.Mount // the kmod store's seamlessmem
	taker *kmod.Taker // grows the pool, never where the kexec's segments go
	mu    sync.Mutex  // one growth of the pool at a time
	log   io.Writer
	made  []string // directories of the disk store this checkpoint made
	kept  bool     // the disk or kmod image was handed over: it stays
	// preloaded: the kernel is loaded with a command line naming the disk
	// image; until the image is handed over, the plain kernel must come
	// back, or the next boot would look for an image that is not there.
	preloaded bool
	// unloaded: the plain kernel gave way to the load of the kmod image;
	// until the image is handed over, it must come back.
	unloaded bool
}

func newStaging(in *contract.Intent, log io.Writer) (*staging, error) {
	switch in.Store {
	case "kmod":
		sg, err := newKmodStaging(in, log)
		if err == nil {
			return sg, nil
		}
		// Nothing is frozen yet: the image goes where store = auto would
		// put it now.
		alt, why, aerr := chooseStore(config.Config{Store: "auto", DiskDir: in.DiskDir}, in.ImageBytes,
			fileSize(in.Kernel.Initrd), measure(config.Config{DiskDir: in.DiskDir}, in.From, in.Kernel.Release))
		if aerr != nil {
			return nil, fmt.Errorf("%v, and %w", err, aerr)
		}
		fmt.Fprintf(log, "seamless: %v: the image goes to the %s store instead\n", err, why)
		in.Store = alt
		if alt == "disk" {
			return newStaging(in, log)
		}
	case "disk":
		dir := filepath.Join(in.DiskDir, time.Now().UTC().Format("20060102T150405Z"))
		made, err := image.MakeDir(dir)
		if err != nil {
			return nil, fmt.Errorf("disk store: %w", err)
		}
		return &staging{store: "disk", dir: dir, made: made}, nil
	}
	sg, err := store.NewStage(contract.StageDir(), stageSize(fileSize(in.Kernel.Initrd)))
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(sg.Dir, "image")
	if err := os.Mkdir(dir, 0o700); err != nil {
		sg.Close()
		return nil, fmt.Errorf("image stage: %w", err)
	}
	return &staging{store: "ram", dir: dir, stage: sg}, nil
}

// preload loads the next kernel with a command line that names the disk
// image this staging will hold, and the plain initrd.
func (sg *staging) preload(in *contract.Intent) error {
	if err := loadKernel(in.Kernel, in.Cmdline+" "+contract.Disk(sg.dir).Param(), nil); err != nil {
		return err
	}
	sg.preloaded = true
	return nil
}

// load hands the image to the next kernel: appended to its initrd (RAM),
// loaded with kexec_file_load and seamless.image=; on disk, synced where
// the command line the kernel was preloaded with names it; in the kmod
// store, sealed, its memory reserved on the command line and the module
// appended to the initrd. phase times its steps.
func (sg *staging) load(in *contract.Intent, st *contract.Status, phase func(string, time.Time)) error {
	t := time.Now()
	switch sg.store {
	case "disk":
		// The image's files were synced as they were written; the
		// directories that hold them are synced now.
		if err := syncDirs(sg.dir); err != nil {
			return fmt.Errorf("disk store: %w", err)
		}
		phase("store", t)
		sample(st, "image stored")
		st.Image = sg.dir
		sg.kept = true
		return nil
	case "kmod":
		args, err := sg.seal()
		if err != nil {
			return err
		}
		initrd, err := kmodInitrd(in)
		if err != nil {
			return err
		}
		defer initrd.Close()
		phase("store", t)
		sample(st, "image stored")
		t = time.Now()
		if err := sg.replaceKernel(in.Kernel, in.Cmdline+" "+args, initrd); err != nil {
			return err
		}
		phase("kexec load", t)
		st.Image = args
		sg.kept = true
		return nil
	}
	// The stage's files leave it as they go into the archive: the image is
	// never held twice before the kernel copies it.
	initrd, err := store.InitrdWithImage(in.Kernel.Initrd, sg.dir, true)
	if err != nil {
		return err
	}
	defer initrd.Close()
	phase("store", t)
	sample(st, "image stored")
	t = time.Now()
	if err := loadKernel(in.Kernel, in.Cmdline+" "+contract.RAM().Param(), initrd); err != nil {
		return err
	}
	phase("kexec load", t)
	st.Image = contract.RAMImage
	return nil
}

// loadKernel loads k with cmdline and initrd (k's own initrd when nil).
func loadKernel(k kernel.Kernel, cmdline string, initrd *os.File) error {
	if initrd == nil {
		f, err := os.Open(k.Initrd)
		if err != nil {
			return err
		}
		defer f.Close()
		initrd = f
	}
	return kexecLoad(k.Image, initrd, cmdline)
}

// kexecLoad, kexecLoaded and kexecUnload are kexec's; tests that cannot
// load a kernel replace them.
var (
	kexecLoad   = kexec.Load
	kexecLoaded = kexec.Loaded
	kexecUnload = kexec.Unload
)

// replaceKernel loads k with cmdline and initrd in place of the kernel
// `seamless update` loaded plain, which is unloaded first: the kernel would
// otherwise hold both copies of the kernel and initrd at once, at the
// update's peak, moments after the services' memory moved into the pool.
// Until the image is handed over, close loads the plain kernel again.
func (sg *staging) replaceKernel(k kernel.Kernel, cmdline string, initrd *os.File) error {
	if kexecLoaded() {
		if err := kexecUnload(); err != nil {
			return fmt.Errorf("unload the kernel loaded without the image: %w", err)
		}
		sg.unloaded = true
	}
	return loadKernel(k, cmdline, initrd)
}

// close frees the stage, and removes a disk image that was not handed over
// (with the directories this checkpoint made for it, and only those). A
// kernel preloaded for that image, or unloaded for the kmod image, gives
// way to the plain one again. A kmod pool handed over stays mounted: the
// kexec takes it to the next kernel; one that was not gives its memory
// back.
func (sg *staging) close(in *contract.Intent, log io.Writer) {
	if sg.stage != nil {
		sg.stage.Close()
	}
	if sg.pool != nil && !sg.kept {
		if err := sg.pool.Unmount(); err != nil {
			fmt.Fprintf(log, "seamless: %v\n", err)
		}
	}
	if (sg.preloaded || sg.unloaded) && !sg.kept {
		if err := loadKernel(in.Kernel, in.Cmdline, nil); err != nil {
			// The next boot names an image that is not there: its restore
			// daemon says so and every unit starts as in a reboot.
			fmt.Fprintf(log, "seamless: load the kernel without the image again: %v\n", err)
		}
	}
	if sg.store == "disk" && !sg.kept {
		os.RemoveAll(sg.dir)
		for i := len(sg.made) - 1; i >= 0; i-- {
			os.Remove(sg.made[i]) // only if empty
		}
	}
}

// syncDirs fsyncs every directory below and including dir.
func syncDirs(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}
