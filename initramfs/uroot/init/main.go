// Command init is PID 1 of the seamless restorer initramfs built by
// initramfs/uroot/build.sh, for systems whose initramfs is made by neither
// initramfs-tools nor dracut.
//
// It mounts /proc, /sys, /dev and /run (before anything else runs, so that
// stage 1 costs no more PIDs than it must), runs the boot script /bin/uinit
// (a u-root gosh script: stage 1, kernel modules, the real root mounted at
// /newroot, stage 1 again for an image on disk), then switches root to
// /newroot and executes its init (init= on the kernel command line, or
// /sbin/init) as PID 1.
//
// u-root's own init cannot be PID 1 here: it runs uinit as a child and
// never hands PID 1 over (the gosh shell has no real exec either), and it
// mounts cgroup v1 hierarchies that would follow /sys into the real root.
//
// Installed as /bin/findroot too: see findroot.go.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"
)

const (
	// NewRoot is where the boot script mounts the real root.
	NewRoot = "/newroot"
	// Uinit is the boot script.
	Uinit = "/bin/uinit"
	// Shell is the rescue shell.
	Shell = "/bbin/gosh"
)

func main() {
	if filepath.Base(os.Args[0]) == "findroot" {
		os.Exit(findrootMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "init: not PID 1; as findroot: findroot ROOT")
		os.Exit(2)
	}
	mountAPI()
	log := logger()
	console := openConsole()
	os.Setenv("PATH", "/bin:/bbin:/sbin:/usr/bin:/usr/sbin")
	os.Setenv("NEWROOT", NewRoot)

	if err := run(console, Uinit); err != nil {
		fmt.Fprintf(log, "%s failed: %v: rescue shell (exit it to try the switch to %s again)\n", Uinit, err, NewRoot)
	} else {
		switchRoot(log)
	}
	for {
		if err := run(console, Shell); err != nil {
			fmt.Fprintf(log, "rescue shell: %v\n", err)
			time.Sleep(time.Second)
		}
		switchRoot(log)
	}
}

// mountAPI mounts the kernel's file systems, each where it is not yet.
func mountAPI() {
	for _, m := range []struct {
		fs, dir, opts string
		flags         uintptr
	}{
		{"proc", "/proc", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"sysfs", "/sys", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"devtmpfs", "/dev", "mode=0755", unix.MS_NOSUID},
		{"tmpfs", "/run", "mode=0755", unix.MS_NOSUID | unix.MS_NODEV},
	} {
		os.MkdirAll(m.dir, 0o755)
		if err := unix.Mount(m.fs, m.dir, m.fs, m.flags, m.opts); err != nil && !errors.Is(err, unix.EBUSY) {
			fmt.Fprintf(os.Stderr, "init: mount %s on %s: %v\n", m.fs, m.dir, err)
		}
	}
}

// logger writes to the kernel log, or to stderr without one.
func logger() io.Writer {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return prefixed{os.Stderr}
	}
	return prefixed{f}
}

type prefixed struct{ w io.Writer }

func (p prefixed) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, "seamless-init: "+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

func openConsole() *os.File {
	f, err := os.OpenFile("/dev/console", os.O_RDWR, 0)
	if err != nil {
		return os.Stdout
	}
	return f
}

// run runs a program on the console and waits for it alone: the orphans
// PID 1 inherits (the restore daemon among them) are not its business.
func run(console *os.File, path string) error {
	cmd := exec.Command(path)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = console, console, console
	return cmd.Run()
}

// switchRoot switches to the real root if it is mounted and has an init;
// it returns only if it did not switch.
func switchRoot(log io.Writer) {
	init := "/sbin/init"
	if b, err := os.ReadFile("/proc/cmdline"); err == nil {
		if v := cmdlineValue(string(b), "init"); v != "" {
			init = v
		}
	}
	if err := hasInit(NewRoot, init); err != nil {
		fmt.Fprintf(log, "cannot switch to %s: %v\n", NewRoot, err)
		return
	}
	fmt.Fprintf(log, "switching root to %s, init %s\n", NewRoot, init)
	// Past the deletion of the initramfs there is no way back: a failed
	// exec leaves PID 1 nothing but to exit (a kernel panic that says why).
	if err := mount.SwitchRoot(NewRoot, init); err != nil {
		fmt.Fprintf(log, "switch root: %v\n", err)
		os.Exit(1)
	}
}

// hasInit checks that a file system is mounted at root and has init.
func hasInit(root, init string) error {
	var rst, nst unix.Stat_t
	if err := unix.Stat(root, &nst); err != nil {
		return err
	}
	if unix.Stat("/", &rst) == nil && rst.Dev == nst.Dev {
		return fmt.Errorf("nothing is mounted on %s", root)
	}
	return checkInit(root, init)
}

// checkInit checks that init is an executable file in the tree at root,
// following symbolic links (of directories too) as they will resolve once
// root is "/".
func checkInit(root, init string) error {
	todo := strings.Split(init, "/")
	cur, hops := "/", 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		st, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return fmt.Errorf("init %s: %w", init, err)
		}
		if st.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return fmt.Errorf("init %s: too many symbolic links", init)
		}
		t, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return err
		}
		if filepath.IsAbs(t) {
			cur = "/"
		}
		todo = append(strings.Split(t, "/"), todo...)
	}
	st, err := os.Stat(filepath.Join(root, cur))
	if err != nil {
		return fmt.Errorf("init %s: %w", init, err)
	}
	if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("init %s: %s is not an executable file", init, cur)
	}
	return nil
}

// cmdlineValue returns the value of the last NAME= on a kernel command
// line, or "".
func cmdlineValue(cmdline, name string) string {
	v := ""
	for _, f := range strings.Fields(cmdline) {
		if s, ok := strings.CutPrefix(f, name+"="); ok {
			v = s
		}
	}
	return v
}
