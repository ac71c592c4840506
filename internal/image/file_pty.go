package image

import "fmt"

// Terminals of pseudo-terminal pairs. The pair's own state (settings,
// queues, owner) is in Tree.Ptys.
const (
	FilePtyMaster = "pty-master"
	FilePtySlave  = "pty-slave"
	// FileHungUp is a terminal that was hung up (its pty master closed,
	// or vhangup): reads return end of file, writes and ioctls EIO.
	FileHungUp = "hung-up-terminal"
)

// PtyEnd says which pseudo-terminal a master or slave description is an
// end of: its /dev/pts index (for a hung-up terminal, -1 when it was not a
// pty's slave).
type PtyEnd struct {
	Index int `json:"index"`
}

func validatePtyEnd(f *File, c *checker) error {
	if err := need(f.Pty, "pty"); err != nil {
		return err
	}
	if !c.ptys[f.Pty.Index] {
		return fmt.Errorf("pty %d is not in the image", f.Pty.Index)
	}
	return nil
}

func validateHungUp(f *File, _ *checker) error {
	if err := need(f.Pty, "pty"); err != nil {
		return err
	}
	if f.Pty.Index < -1 || f.Pty.Index >= MaxPtyIndex {
		return fmt.Errorf("bad pty index %d", f.Pty.Index)
	}
	return nil
}
