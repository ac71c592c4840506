package task

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/proc"
)

// unconfined is AppArmor's label of a task no profile confines.
const unconfined = "unconfined"

// CheckLabel refuses thread tid of process pid if a Linux security module
// (AppArmor, SELinux, Smack) gives it a label other than AppArmor's
// "unconfined". A restored thread is made by the restorer, and would carry
// the restorer's label, not its profile or domain: it would run with other
// rights than it had, silently. Without a security module there is no
// label to keep.
func CheckLabel(pid, tid int) error {
	label, err := Label(pid, tid)
	if err != nil {
		return err
	}
	return checkLabel(pid, tid, label)
}

func checkLabel(pid, tid int, label string) error {
	if label == "" || label == unconfined {
		return nil
	}
	return fmt.Errorf("thread %d of process %d runs confined by the security label %q (AppArmor profile or SELinux domain), "+
		"which a restore cannot give back: it would come back with the restorer's", tid, pid, label)
}

// Label is the security label of thread tid of process pid, "" when no
// security module labels tasks.
func Label(pid, tid int) (string, error) {
	b, err := os.ReadFile(proc.Path(pid, "task", strconv.Itoa(tid), "attr", "current"))
	switch {
	case errors.Is(err, unix.EINVAL), errors.Is(err, os.ErrNotExist):
		return "", nil // no module that labels tasks
	case err != nil:
		return "", fmt.Errorf("security label of thread %d of process %d: %w", tid, pid, err)
	}
	return strings.TrimRight(string(b), "\x00\n"), nil
}
