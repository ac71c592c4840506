package store

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Stage is where the RAM store's image is written before it is archived
// into the initrd: a tmpfs of its own, mounted for the checkpoint, so that
// the image's room is the memory it may take, not what is left in /run (a
// small tmpfs on most systems).
type Stage struct {
	// Dir is the stage's mount point.
	Dir string
	// Huge says the tmpfs was mounted with HugeOption.
	Huge bool
}

// NewStage mounts a private tmpfs of at most size bytes on dir, a new
// directory (a stage left by an earlier run that died is removed first).
func NewStage(dir string, size int64) (*Stage, error) {
	unix.Unmount(dir, unix.MNT_DETACH)
	os.Remove(dir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("image stage: %w", err)
	}
	opts := "mode=0700,size=" + strconv.FormatInt(max(size, 1<<20), 10)
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	huge := true
	err := unix.Mount("seamless-stage", dir, "tmpfs", flags, opts+","+HugeOption)
	if errors.Is(err, unix.EINVAL) {
		// A kernel without transparent huge pages knows no huge=.
		huge = false
		err = unix.Mount("seamless-stage", dir, "tmpfs", flags, opts)
	}
	if err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("image stage: mount a tmpfs on %s: %w", dir, err)
	}
	return &Stage{Dir: dir, Huge: huge}, nil
}

// HugeOption is the tmpfs option the stage is mounted with where the kernel
// has transparent huge pages: a file is given 2 MiB pages as far as its
// size reaches. The checkpoint sizes each memory file before it fills it,
// so the kernel allocates, zeroes and indexes one page where it would
// otherwise take 512: on a tmpfs of 4 KiB pages that allocation, not the
// copy, is most of the checkpoint's time (see docs/limitations.md).
const HugeOption = "huge=within_size"

// Close unmounts the stage, which frees whatever it still holds, and
// removes its mount point.
func (s *Stage) Close() error {
	err := unix.Unmount(s.Dir, unix.MNT_DETACH)
	if rerr := os.Remove(s.Dir); err == nil && rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("image stage %s: %w", s.Dir, err)
	}
	return nil
}
