package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// VMConfig describes one QEMU guest.
type VMConfig struct {
	Dir        string         // run directory: sockets, serial log, QEMU's own log
	Disk       string         // root disk (qcow2 overlay or raw)
	DiskFormat string         // "qcow2" or "raw"
	Payload    string         // optional second disk (raw ext4), read-only
	Kernel     string         // optional direct kernel boot (skips firmware and GRUB)
	Initrd     string         // initrd for Kernel
	Append     string         // command line for Kernel
	MemoryMB   int            // guest RAM
	CPUs       int            // guest vCPUs
	Forwards   map[string]int // name -> guest TCP port, forwarded from 127.0.0.1
	HostPorts  map[string]int // filled by Start: name -> host port
	ExtraArgs  []string       // appended to the QEMU command line
}

// VM is a running QEMU process.
type VM struct {
	Cfg       VMConfig
	SerialLog string
	Agent     *Agent
	Started   time.Time

	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// GuestLock is held by every running lab guest: guests share the host's
// CPUs under TCG, so two at once would halve each other's speed and every
// time measured. A second guest waits for the first one to end.
var GuestLock = "/run/seamless-lab-guest.lock"

// lockGuest waits for the machine's one guest slot.
func lockGuest() (*os.File, error) {
	f, err := os.OpenFile(GuestLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the guest lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		logf(os.Stderr, "waiting for another lab guest to end (lock %s)", GuestLock)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", GuestLock, err)
		}
	}
	return f, nil
}

// StartVM starts QEMU under TCG. /dev/kvm is never used: on these machines it hangs.
func StartVM(cfg VMConfig) (*VM, error) {
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = 2048
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	if cfg.DiskFormat == "" {
		cfg.DiskFormat = "qcow2"
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return nil, fmt.Errorf("qemu-system-x86_64 not installed (apt-get install qemu-system-x86): %w", err)
	}
	serial := filepath.Join(cfg.Dir, "serial.log")
	qga := filepath.Join(cfg.Dir, "qga.sock")
	qmp := filepath.Join(cfg.Dir, "qmp.sock")
	for _, p := range []string{qga, qmp} {
		_ = os.Remove(p)
	}
	hostfwd := ""
	cfg.HostPorts = map[string]int{}
	for name, gport := range cfg.Forwards {
		hp, err := freePort()
		if err != nil {
			return nil, err
		}
		cfg.HostPorts[name] = hp
		hostfwd += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", hp, gport)
	}
	args := []string{
		"-name", "seamless-lab",
		"-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
		"-accel", "tcg", "-cpu", "max",
		"-smp", strconv.Itoa(cfg.CPUs), "-m", strconv.Itoa(cfg.MemoryMB),
		"-chardev", "file,id=ser0,path=" + serial, "-serial", "chardev:ser0",
		"-drive", fmt.Sprintf("file=%s,format=%s,if=virtio,cache=unsafe,discard=unmap", cfg.Disk, cfg.DiskFormat),
		"-netdev", "user,id=net0,restrict=on" + hostfwd,
		"-device", "virtio-net-pci,netdev=net0,romfile=",
		"-device", "virtio-rng-pci",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=qga0,path=" + qga + ",server=on,wait=off",
		"-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
		"-qmp", "unix:" + qmp + ",server=on,wait=off",
	}
	if cfg.Payload != "" {
		args = append(args, "-drive", "file="+cfg.Payload+",format=raw,if=virtio,readonly=on")
	}
	if cfg.Kernel != "" {
		args = append(args, "-kernel", cfg.Kernel, "-initrd", cfg.Initrd, "-append", cfg.Append)
	}
	args = append(args, cfg.ExtraArgs...)

	guest, err := lockGuest()
	if err != nil {
		return nil, err
	}
	qlog, err := os.OpenFile(filepath.Join(cfg.Dir, "qemu.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		guest.Close()
		return nil, fmt.Errorf("create qemu log: %w", err)
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	cmd.Stdout, cmd.Stderr = qlog, qlog
	// QEMU dies with us, whatever happens to this process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	fmt.Fprintf(qlog, "qemu-system-x86_64 %s\n", strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		qlog.Close()
		guest.Close()
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	vm := &VM{Cfg: cfg, SerialLog: serial, Agent: NewAgent(qga), Started: time.Now(), cmd: cmd, exited: make(chan struct{})}
	go func() {
		vm.err = cmd.Wait()
		qlog.Close()
		guest.Close()
		close(vm.exited)
	}()
	// The sockets appear once QEMU has parsed its arguments.
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(qga); err == nil {
			return vm, nil
		}
		select {
		case <-vm.exited:
			return nil, fmt.Errorf("qemu exited at start (%v): %s", vm.err, tailFile(filepath.Join(cfg.Dir, "qemu.log"), 20))
		case <-time.After(50 * time.Millisecond):
		}
	}
	vm.Kill()
	return nil, errors.New("qemu did not create its guest agent socket within 5 s")
}

// Exited is closed when QEMU exits.
func (vm *VM) Exited() <-chan struct{} { return vm.exited }

// ExitErr is QEMU's exit status once Exited is closed.
func (vm *VM) ExitErr() error { return vm.err }

// HostPort returns the host port forwarded to the named guest port.
func (vm *VM) HostPort(name string) int { return vm.Cfg.HostPorts[name] }

// Kill stops QEMU at once and waits for it.
func (vm *VM) Kill() {
	if vm == nil || vm.cmd.Process == nil {
		return
	}
	_ = vm.Agent.Close()
	select {
	case <-vm.exited:
		return
	default:
	}
	_ = vm.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-vm.exited:
	case <-time.After(5 * time.Second):
		_ = vm.cmd.Process.Kill()
		<-vm.exited
	}
}

// WaitExit waits for QEMU to exit on its own (guest power-off).
func (vm *VM) WaitExit(ctx context.Context) error {
	select {
	case <-vm.exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the guest to power off: %w", ctx.Err())
	}
}

// SerialTail returns the last n lines of the serial console log.
func (vm *VM) SerialTail(n int) string { return tailFile(vm.SerialLog, n) }

var ansiEscape = regexp.MustCompile("\x1b\\[[0-9;?]*[A-Za-z]")

// tailFile returns the last n lines of a file, or a note saying why it cannot.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	b = bytes.ReplaceAll(b, []byte("\r"), nil)
	b = ansiEscape.ReplaceAll(b, nil) // systemd's colours and cursor moves
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
