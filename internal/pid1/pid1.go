// Package pid1 is PID 1 of the seamless restorer initramfs (package
// restorer builds it): the seamless binary, run by the kernel as /init.
//
// It does what a distribution's initramfs does for a restore, and nothing
// else: it mounts /proc, /sys, /dev and /run, runs stage 1 (before
// anything else takes PIDs), loads the kernel modules of the root device
// and its file system, finds root= by reading superblocks (no udev),
// mounts it read-only on /newroot, runs stage 1 again for an image in the
// disk store, and switches root to the real init. Without udev, scripts
// or a shell it reaches systemd seconds sooner under emulation
// (docs/lab.md).
//
// If it cannot mount the root it says why on the console and reboots
// through the firmware: the normal boot path starts the services cold. A
// shell would wait for somebody who is not there during an unattended
// update.
package pid1

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/kernel"
)

// failPause is how long a failed boot's reason stays on the console
// before the reboot.
const failPause = 15 * time.Second

// Main boots the real root and executes its init. It never returns: what
// it cannot boot ends in a reboot (or, if even that fails, in PID 1's exit,
// a kernel panic that says why).
func Main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "seamless: /init of the restorer initramfs runs only as PID 1")
		os.Exit(2)
	}
	mountAPI()
	// The kernel log, for this process's lines and stage 1's.
	out := io.Writer(os.Stderr)
	if k, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		out = k
	}
	log := prefixed{out}
	os.Setenv("PATH", "/bin:/sbin:/usr/bin:/usr/sbin")
	init, err := boot(log, out)
	if err == nil {
		err = switchRoot(log, init)
	}
	fmt.Fprintf(log, "%v: rebooting through the firmware in %s; the normal boot starts the services cold\n", err, failPause)
	time.Sleep(failPause)
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		fmt.Fprintf(log, "reboot: %v\n", err)
	}
	os.Exit(1) // PID 1 exiting: the kernel panics, and says so
}

// boot runs stage 1 (its output to out), loads the modules and mounts the
// real root on contract.RestorerRoot; it returns the init to execute
// there.
func boot(log, out io.Writer) (string, error) {
	stage1(log, out)
	loadModules(log)
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return "", err
	}
	r, err := parseRoot(string(cmdline))
	if err != nil {
		return "", err
	}
	dev, fs, err := findRoot(r.spec, r.delay)
	if err != nil {
		return "", err
	}
	if r.fsType != "" {
		fs = r.fsType
	}
	if fs == "auto" {
		return "", fmt.Errorf("%s: no file system recognized (give rootfstype=)", dev)
	}
	var flags uintptr
	if r.readOnly {
		flags |= unix.MS_RDONLY
	}
	if err := os.MkdirAll(contract.RestorerRoot, 0o755); err != nil {
		return "", err
	}
	if err := unix.Mount(dev, contract.RestorerRoot, fs, flags, r.options); err != nil {
		return "", fmt.Errorf("mount %s (%s) on %s: %w", dev, fs, contract.RestorerRoot, err)
	}
	fmt.Fprintf(log, "mounted %s (%s) on %s\n", dev, fs, contract.RestorerRoot)
	stage1(log, out, "--root", contract.RestorerRoot)
	return r.init, nil
}

// stage1 runs `seamless stage1`: for an image in RAM (first call) or on
// disk (with --root) it reserves the PIDs and starts the restore daemon;
// on a boot without an image it returns at once. It never fails the boot.
func stage1(log, out io.Writer, args ...string) {
	cmd := exec.Command(contract.RestorerStage1, append([]string{"stage1"}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(log, "stage 1: %v\n", err)
	}
}

// loadModules loads the modules contract.RestorerModules lists, each once
// those it needs are loaded (or failed), as many at a time as there are
// CPUs: under emulation a module's load is mostly CPU (its signature, its
// relocations). A module already there is fine; one that fails is logged
// and the boot goes on: the root's mount says whether it mattered.
func loadModules(log io.Writer) {
	b, err := os.ReadFile(contract.RestorerModules)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(log, "%v\n", err)
		}
		return
	}
	t0 := time.Now()
	mods := parseModuleList(string(b))
	errs := loadAll(mods, runtime.NumCPU(), func(name string) error {
		return kernel.LoadModule(filepath.Join(contract.RestorerModuleDir, name))
	})
	for _, m := range mods {
		if err := errs[m.name]; err != nil {
			fmt.Fprintf(log, "module %s: %v\n", m.name, err)
		}
	}
	fmt.Fprintf(log, "loaded %d modules in %d ms\n", len(mods)-len(errs), time.Since(t0).Milliseconds())
}

// module is a line of contract.RestorerModules: a module's file and the
// files it needs loaded first.
type module struct {
	name  string
	needs []string
}

// parseModuleList reads contract.RestorerModules; a module listed twice
// counts once.
func parseModuleList(text string) []module {
	var mods []module
	seen := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) > 0 && !seen[f[0]] {
			seen[f[0]] = true
			mods = append(mods, module{name: f[0], needs: f[1:]})
		}
	}
	return mods
}

// loadAll loads mods with load, each after the modules it needs that come
// before it in mods (the list is in dependency order: a need listed later,
// or not at all, is not waited for, so that no cycle can hang the boot),
// at most workers at a time, and returns the failures by name.
func loadAll(mods []module, workers int, load func(string) error) map[string]error {
	done := map[string]chan struct{}{}
	at := map[string]int{}
	for i, m := range mods {
		done[m.name] = make(chan struct{})
		at[m.name] = i
	}
	var mu sync.Mutex
	errs := map[string]error{}
	slots := make(chan struct{}, max(workers, 1))
	var wg sync.WaitGroup
	for _, m := range mods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[m.name])
			for _, n := range m.needs {
				if i, ok := at[n]; ok && i < at[m.name] {
					<-done[n]
				}
			}
			slots <- struct{}{}
			err := load(m.name)
			<-slots
			if err != nil {
				mu.Lock()
				errs[m.name] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// rootSpec is what the kernel command line says about the root.
type rootSpec struct {
	spec     string // root=
	fsType   string // rootfstype=
	options  string // rootflags=
	readOnly bool   // ro (the default) or rw
	delay    time.Duration
	init     string // init=, /sbin/init by default
}

// parseRoot reads root=, rootfstype=, rootflags=, ro/rw, rootdelay=
// (seconds to wait for the device; 30 by default) and init= from a
// command line; the last of each wins, as in the kernel.
func parseRoot(cmdline string) (rootSpec, error) {
	r := rootSpec{readOnly: true, delay: 30 * time.Second, init: "/sbin/init"}
	for _, f := range strings.Fields(cmdline) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "root":
			r.spec = v
		case "rootfstype":
			r.fsType = v
		case "rootflags":
			r.options = v
		case "ro":
			r.readOnly = true
		case "rw":
			r.readOnly = false
		case "init":
			r.init = v
		case "rootdelay":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return r, fmt.Errorf("rootdelay=%s: not a number of seconds", v)
			}
			r.delay = time.Duration(n) * time.Second
		}
	}
	if r.spec == "" {
		return r, fmt.Errorf("no root= on the kernel command line")
	}
	return r, nil
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

// prefixed writes each message to the kernel log under pid1's name.
type prefixed struct{ w io.Writer }

func (p prefixed) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, "seamless-init: "+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// switchRoot switches to the real root and executes init there; it
// returns only if it did not switch.
func switchRoot(log io.Writer, init string) error {
	if err := hasInit(contract.RestorerRoot, init); err != nil {
		return fmt.Errorf("cannot switch to %s: %w", contract.RestorerRoot, err)
	}
	fmt.Fprintf(log, "switching root to %s, init %s\n", contract.RestorerRoot, init)
	// Past the deletion of the initramfs there is no way back: a failed
	// exec leaves PID 1 nothing but to exit (a kernel panic that says why).
	if err := mount.SwitchRoot(contract.RestorerRoot, init); err != nil {
		fmt.Fprintf(log, "switch root: %v\n", err)
		os.Exit(1)
	}
	return nil // not reached: SwitchRoot executes init
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
