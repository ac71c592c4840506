package restored

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/contract"
)

// Stage1 runs in the initramfs. Called without root (from init-top, before
// udev) it starts the daemon for an image in RAM; called with the real
// root mounted at root (init-bottom, pre-pivot) it starts it for an image
// on disk, or for a RAM image if nothing started it earlier. It never
// fails the boot: whatever goes wrong, the services start cold. The
// parameter only names an image: an image on disk is used, and removed,
// only if the daemon finds it where seamless.conf puts images (see
// openDiskImage).
func Stage1(root string, log io.Writer) {
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return
	}
	stage1(string(cmdline), root, log)
}

func stage1(cmdline, root string, log io.Writer) {
	arg := contract.ImageFromCmdline(cmdline)
	if arg == "" {
		return // a normal boot: nothing to do, nothing spent
	}
	if _, err := os.Stat(contract.StatePath()); err == nil {
		return // started already
	}
	img, err := contract.ParseBootImage(arg)
	switch {
	case err != nil:
		fmt.Fprintf(log, "seamless: %s: ignored, the services start cold\n", Bound(err.Error()))
		return
	case img.Disk && root == "":
		return // the disk is not mounted yet
	case img.KmodIndex != 0:
		// The kmod store: the image is in memory the old kernel reserved;
		// the daemon reads it from the seamlessmem mounted here.
		dir, err := mountKmod(img.KmodIndex)
		if err != nil {
			fmt.Fprintf(log, "seamless: %v: the services start cold\n", err)
			return
		}
		arg, root = dir, ""
	case !img.Disk:
		if st, err := os.Stat(img.Path); err != nil || !st.IsDir() {
			fmt.Fprintf(log, "seamless: image %s not found: the services start cold\n", img.Path)
			return
		}
		root = ""
	}
	msg, err := startDaemon(arg, root)
	if err != nil {
		fmt.Fprintf(log, "seamless: %v: the services start cold\n", err)
		if img.KmodIndex != 0 {
			releaseKmod(arg, log)
		}
		return
	}
	fmt.Fprintf(log, "seamless: %s\n", msg)
}

// startDaemon starts the daemon, detached, and waits until it has reserved
// the PIDs or refused the image.
func startDaemon(arg, root string) (string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	defer r.Close()
	args := []string{DaemonName, "restored", "--image", arg}
	if root != "" {
		args = append(args, "--root", root)
	}
	out := kmsg()
	cmd := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        args,
		Env:         []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
		Dir:         "/",
		Stdout:      out,
		Stderr:      out,
		ExtraFiles:  []*os.File{w},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	w.Close()
	if out != nil {
		out.Close()
	}
	if err != nil {
		return "", fmt.Errorf("start the restore daemon: %w", err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case s := <-line:
		if s == "" {
			return "", fmt.Errorf("the restore daemon (pid %d) ended without a word (see the kernel log)", pid)
		}
		r, err := ParseReadiness(s)
		if err != nil {
			return "", fmt.Errorf("restore daemon %d: %w", pid, err)
		}
		if r.Error != "" {
			return "", fmt.Errorf("image refused: %s", r.Error)
		}
		return fmt.Sprintf("restore daemon %d: %s", pid, r.Summary), nil
	case <-time.After(2 * time.Minute):
		// The services start cold: a daemon that got ready later must not
		// restore them a second time, nor read an image that is given
		// back.
		stopDaemon(pid)
		return "", fmt.Errorf("the restore daemon (pid %d) did not get ready in 2 minutes: killed", pid)
	}
}

// stopDaemon kills the daemon pid and waits (a few seconds at most) until
// it is gone.
func stopDaemon(pid int) {
	unix.Kill(pid, unix.SIGKILL)
	for i := 0; i < 50; i++ {
		var ws unix.WaitStatus
		if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); got == pid || err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kmsg opens the kernel log, where the daemon's lines end up in the
// journal of the new boot; nil if it cannot be opened.
func kmsg() *os.File {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return nil
	}
	return f
}

// LineWriter prefixes every line written to W and writes each line with a
// single write: one kernel log record per line.
type LineWriter struct {
	W      io.Writer
	Prefix string
}

func (l LineWriter) Write(p []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if line == "" {
			continue
		}
		if _, err := io.WriteString(l.W, l.Prefix+line); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}
