package update

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/kexec"
	"github.com/seamless-linux/seamless/internal/store"
)

// staging is where a checkpoint at shutdown writes the image: straight into
// a new directory of the disk store (on disk, never through /run), or, for
// the RAM store, into a tmpfs of its own (store.Stage), sized for the image
// rather than by /run.
type staging struct {
	store string
	dir   string // the image: one directory per unit
	stage *store.Stage
	made  []string // directories of the disk store this checkpoint made
	kept  bool     // the disk image was handed over: it stays
}

func newStaging(in *contract.Intent) (*staging, error) {
	switch in.Store {
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

// load hands the image to the next kernel, with kexec_file_load and
// seamless.image=: appended to its initrd (RAM), or named on the command
// line (disk).
func (sg *staging) load(in *contract.Intent, st *contract.Status) error {
	cmdline := in.Cmdline
	var initrd *os.File
	var err error
	switch sg.store {
	case "disk":
		// The image's files were synced as they were written; the
		// directories that hold them are synced now.
		if err := syncDirs(sg.dir); err != nil {
			return fmt.Errorf("disk store: %w", err)
		}
		st.Image = sg.dir
		cmdline += " " + contract.Disk(sg.dir).Param()
		if initrd, err = os.Open(in.Kernel.Initrd); err != nil {
			return err
		}
	default:
		// The stage's files leave it as they go into the archive: the image
		// is never held twice before the kernel copies it.
		if initrd, err = store.InitrdWithImage(in.Kernel.Initrd, sg.dir, true); err != nil {
			return err
		}
		st.Image = contract.RAMImage
		cmdline += " " + contract.RAM().Param()
	}
	defer initrd.Close()
	if err := kexec.Load(in.Kernel.Image, initrd, cmdline); err != nil {
		return err
	}
	sg.kept = sg.store == "disk"
	return nil
}

// close frees the stage, and removes a disk image that was not handed over
// (with the directories this checkpoint made for it, and only those).
func (sg *staging) close() {
	if sg.stage != nil {
		sg.stage.Close()
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
