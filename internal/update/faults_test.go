package update

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/dump"
	"github.com/seamless-linux/seamless/internal/freezer"
	"github.com/seamless-linux/seamless/internal/kernel"
	"github.com/seamless-linux/seamless/internal/netlock"
	"github.com/seamless-linux/seamless/internal/units"
)

// The checkpoint at shutdown against real services in their own cgroups,
// with a fault at each step before the point of no return. Whatever the
// fault, every service must be left running and thawed, to be stopped
// gracefully by the shutdown as a reboot would (issue 10 finding 2: after a
// freeze timeout or an accept queue that never drained, cgroup.freeze
// stayed 1 and the service was SIGKILLed at its stop timeout).

// TestMain runs the test binary as a helper service when asked to.
func TestMain(m *testing.M) {
	if os.Getenv("SEAMLESS_TEST_HELPER") == "pending-accept" {
		pendingAccept()
		return
	}
	os.Exit(m.Run())
}

// pendingAccept is a service, in a network namespace of its own, whose
// listening socket has a connection it never accepts.
func pendingAccept() {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err == nil {
		var ifr *unix.Ifreq
		if ifr, err = unix.NewIfreq("lo"); err == nil {
			if err = unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err == nil {
				ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
				err = unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
			}
		}
	}
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	// Plain TCP: Go would make MPTCP sockets, which seamless refuses.
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	var d net.Dialer
	d.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	defer c.Close()
	fmt.Println("READY")
	time.Sleep(time.Hour)
}

// service is a process tree running in a cgroup of its own.
type service struct {
	cg, dir string
	cmd     *exec.Cmd
}

// startService starts cmd in a new cgroup and waits until it prints READY
// (or, with ready "", a moment).
func startService(t *testing.T, name string, cmd *exec.Cmd, ready string) *service {
	t.Helper()
	root, err := units.CgroupRoot()
	if err != nil {
		t.Skip(err)
	}
	s := &service{cg: "seamless-update-test-" + strconv.Itoa(os.Getpid()) + "-" + name, cmd: cmd}
	s.dir = filepath.Join(root, s.cg)
	if err := os.Mkdir(s.dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup: %v", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() {
		freezer.Thaw(s.dir)
		os.WriteFile(filepath.Join(s.dir, "cgroup.kill"), []byte("1"), 0)
		cmd.Process.Kill()
		cmd.Wait()
		r.Close()
		for i := 0; i < 200 && os.Remove(s.dir) != nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	})
	if err := os.WriteFile(filepath.Join(s.dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	if ready != "" {
		buf := make([]byte, 256)
		r.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, _ := r.Read(buf)
		if !strings.Contains(string(buf[:n]), ready) {
			t.Fatalf("%s did not start: %q", name, buf[:n])
		}
	} else {
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// checkThawed fails unless the service's cgroup is thawed, both as asked
// (cgroup.freeze) and as the kernel reports it, and its processes are not
// held by a tracer.
func (s *service) checkThawed(t *testing.T) {
	t.Helper()
	s.checkCgroupThawed(t)
	pids, _ := units.CgroupPIDs("/" + s.cg)
	for _, pid := range pids {
		st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if !strings.Contains(string(st), "TracerPid:\t0\n") {
			t.Fatalf("process %d is still traced after the checkpoint failed", pid)
		}
	}
}

// checkCgroupThawed is checkThawed for the cgroup only.
func (s *service) checkCgroupThawed(t *testing.T) {
	t.Helper()
	want, _ := os.ReadFile(filepath.Join(s.dir, "cgroup.freeze"))
	for i := 0; i < 500; i++ {
		if frozen, _ := freezer.Frozen(s.dir); !frozen && strings.TrimSpace(string(want)) == "0" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	ev, _ := os.ReadFile(filepath.Join(s.dir, "cgroup.events"))
	if strings.TrimSpace(string(want)) != "0" || !strings.Contains(string(ev), "frozen 0") {
		t.Fatalf("the service's cgroup is left with cgroup.freeze %q, events %q: want it thawed", want, ev)
	}
}

// shutdown runs the checkpoint at shutdown for the services, the kernel
// being no kernel (its load fails), and returns its error and the status.
func shutdown(t *testing.T, store, diskDir string, svcs ...*service) (*contract.Status, error) {
	t.Helper()
	runtime.LockOSThread() // ptrace ties tracees to one OS thread
	defer runtime.UnlockOSThread()
	notKernel := filepath.Join(t.TempDir(), "vmlinuz")
	os.WriteFile(notKernel, []byte("not a kernel"), 0o644)
	in := &contract.Intent{From: "old", Kernel: kernel.Kernel{Release: "new", Image: notKernel, Initrd: notKernel},
		Cmdline: "ro", Cgroups: map[string]string{}, Store: store, DiskDir: diskDir, Requested: time.Now()}
	for _, s := range svcs {
		u := s.cg + ".service"
		in.Units = append(in.Units, u)
		in.Cgroups[u] = "/" + s.cg
	}
	if err := contract.WriteIntent(in); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	err := ShutdownCheckpoint(&log)
	st, serr := contract.ReadStatus()
	if serr != nil || st == nil {
		t.Fatalf("no status after the checkpoint: %v", serr)
	}
	return st, err
}

// fakeLoads makes every kernel load succeed without loading anything, for
// the rest of the test, and returns the command lines it was given.
func fakeLoads(t *testing.T) *[]string {
	var loads []string
	saved := kexecLoad
	kexecLoad = func(_ string, _ *os.File, cmdline string) error {
		loads = append(loads, cmdline)
		return nil
	}
	t.Cleanup(func() { kexecLoad = saved })
	return &loads
}

func needCheckpoint(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	t.Cleanup(contract.SetDirs(t.TempDir(), t.TempDir()))
}

// outcome returns the status of the unit of s.
// wantNoneCarried fails the test unless the shutdown's checkpoint carried
// no unit (nothing is loaded then) and stopped s for a reason naming why.
func wantNoneCarried(t *testing.T, st *contract.Status, err error, s *service, why string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "no unit could be carried") {
		t.Fatalf("ShutdownCheckpoint = %v, want: no unit could be carried", err)
	}
	if o := outcome(st, s); o.Outcome != contract.Stopped || !strings.Contains(o.Reason, why) {
		t.Fatalf("unit outcome %+v, want stopped for a reason naming %q", o, why)
	}
}

func outcome(st *contract.Status, s *service) contract.UnitOutcome {
	for _, u := range st.Units {
		if u.Unit == s.cg+".service" {
			return u
		}
	}
	return contract.UnitOutcome{}
}

// fuseMount mounts a FUSE file system that never answers: a process that
// looks a name up in it waits, in a killable sleep that no freezer can
// interrupt, until the test ends.
func fuseMount(t *testing.T) string {
	t.Helper()
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no FUSE: %v", err)
	}
	mnt := t.TempDir()
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", dev.Fd())
	if err := unix.Mount("seamless-test", mnt, "fuse", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		dev.Close()
		t.Skipf("cannot mount FUSE: %v", err)
	}
	t.Cleanup(func() {
		dev.Close() // aborts the connection: the waiting lookup fails
		unix.Unmount(mnt, unix.MNT_DETACH)
	})
	return mnt
}

// frozenFS mounts a small ext4 file system and freezes it (FIFREEZE, as
// for a snapshot): a process that writes to it waits in an uninterruptible
// sleep, which keeps its cgroup from freezing, until thaw is called.
func frozenFS(t *testing.T) (mnt string, thaw func()) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, 16<<20)
	mnt = t.TempDir()
	for _, c := range [][]string{{"mkfs.ext4", "-q", "-F", img}, {"mount", "-o", "loop", img, mnt}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Skipf("%s: %v %s", c[0], err, out)
		}
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	if out, err := exec.Command("fsfreeze", "-f", mnt).CombinedOutput(); err != nil {
		t.Skipf("fsfreeze: %v %s", err, out)
	}
	thaw = func() { exec.Command("fsfreeze", "-u", mnt).Run() }
	t.Cleanup(thaw)
	return mnt, thaw
}

func TestCheckpointFaultFreezeTimeout(t *testing.T) {
	needCheckpoint(t)
	mnt, thawFS := frozenFS(t)
	old := freezer.Timeout
	freezer.Timeout = time.Second
	defer func() { freezer.Timeout = old }()
	svc := startService(t, "freeze", exec.Command("sh", "-c", "echo READY; echo x > "+mnt+"/x; exec sleep 300"), "READY")
	t.Cleanup(thawFS)                  // before the service is killed: a task in D state cannot die
	time.Sleep(200 * time.Millisecond) // the write is waiting for the file system
	st, err := shutdown(t, "ram", "", svc)
	svc.checkThawed(t)
	wantNoneCarried(t, st, err, svc, "not done within")
}

// TestCheckpointFaultStuckThread: a thread that the freezer counts frozen
// but that no ptrace request can stop (a lookup on a FUSE file system that
// never answers) fails its unit's checkpoint within dump.StopTimeout: the
// shutdown does not hang, the unit is thawed. (The stuck thread stays
// traced until seamless exits, see dump.StopTimeout.)
func TestCheckpointFaultStuckThread(t *testing.T) {
	needCheckpoint(t)
	mnt := fuseMount(t)
	old := dump.StopTimeout
	dump.StopTimeout = time.Second
	defer func() { dump.StopTimeout = old }()
	svc := startService(t, "stuck", exec.Command("sh", "-c", "echo READY; stat "+mnt+"/x; exec sleep 300"), "READY")
	time.Sleep(200 * time.Millisecond) // stat is waiting for the file system
	st, err := shutdown(t, "ram", "", svc)
	svc.checkCgroupThawed(t)
	wantNoneCarried(t, st, err, svc, "does not stop within")
}

func TestCheckpointFaultAcceptQueue(t *testing.T) {
	needCheckpoint(t)
	oldR, oldW, oldD := dump.PendingRetries, dump.PendingWait, dump.DrainTimeout
	dump.PendingRetries, dump.PendingWait, dump.DrainTimeout = 3, 10*time.Millisecond, 200*time.Millisecond
	defer func() { dump.PendingRetries, dump.PendingWait, dump.DrainTimeout = oldR, oldW, oldD }()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), "SEAMLESS_TEST_HELPER=pending-accept")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET}
	svc := startService(t, "accept", cmd, "READY")
	st, err := shutdown(t, "ram", "", svc)
	svc.checkThawed(t)
	wantNoneCarried(t, st, err, svc, "accept queue")
	// Neither the door of its listener nor a checkpoint's lock is left.
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", svc.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if chains, err := netlock.List(ns); err != nil || len(chains) != 0 {
		t.Fatalf("network lock chains left: %v (%v)", chains, err)
	}
}

// TestCheckpointFaultDump: a unit that cannot be checkpointed (it holds a
// netlink socket) is let go and thawed, and when no unit is left to carry,
// no image is written nor loaded (issue 10 finding 11).
func TestCheckpointFaultDump(t *testing.T) {
	needCheckpoint(t)
	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		t.Skip(err)
	}
	f := os.NewFile(uintptr(nl), "netlink")
	defer f.Close()
	cmd := exec.Command("sh", "-c", "echo READY; exec sleep 300")
	cmd.ExtraFiles = []*os.File{f}
	bad := startService(t, "dump", cmd, "READY")
	st, err := shutdown(t, "ram", "", bad)
	bad.checkThawed(t)
	wantNoneCarried(t, st, err, bad, "netlink")
}

// TestCheckpointFaultOneOfTwo: of two units, one cannot be checkpointed:
// it is thawed at once and stopped; the other is carried until the load
// fails, then thawed too.
func TestCheckpointFaultOneOfTwo(t *testing.T) {
	needCheckpoint(t)
	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		t.Skip(err)
	}
	f := os.NewFile(uintptr(nl), "netlink")
	defer f.Close()
	cmd := exec.Command("sh", "-c", "echo READY; exec sleep 300")
	cmd.ExtraFiles = []*os.File{f}
	bad := startService(t, "bad", cmd, "READY")
	good := startService(t, "good", exec.Command("sh", "-c", "echo READY; exec sleep 300"), "READY")
	st, err := shutdown(t, "ram", "", bad, good)
	if err == nil || !strings.Contains(err.Error(), "kexec_file_load") {
		t.Fatalf("ShutdownCheckpoint = %v, want the load to fail", err)
	}
	if o := outcome(st, bad); o.Outcome != contract.Stopped || !strings.Contains(o.Reason, "netlink") {
		t.Fatalf("failing unit: %+v", o)
	}
	if o := outcome(st, good); o.Outcome != contract.Stopped || !strings.Contains(o.Reason, "could not be handed") || o.Processes != 1 {
		t.Fatalf("healthy unit: %+v", o)
	}
	bad.checkThawed(t)
	good.checkThawed(t)
}

// TestCheckpointNothingToCarry: an update without any unit to carry is a
// plain kexec: nothing is written, nothing loaded (issue 10 finding 11).
func TestCheckpointNothingToCarry(t *testing.T) {
	needCheckpoint(t)
	st, err := shutdown(t, "ram", "")
	if err != nil || st.State != "plain kexec" || st.Image != "" {
		t.Fatalf("ShutdownCheckpoint without units = %v, status %+v; want a plain kexec, no image loaded", err, st)
	}
	if ents, _ := os.ReadDir(contract.RunDir); len(ents) != 0 {
		t.Fatalf("left in the run directory: %v", ents)
	}
}

// TestCheckpointStagesOutsideRun: with /run a small tmpfs, the image of a
// service bigger than /run is written all the same, in RAM and on disk
// (issue 10 finding 8: 100 MiB with store=disk, 74 GB free and /run at 64
// MiB failed with "no space left on device"). In RAM the load fails (no
// kernel) and nothing stays in /run; on disk the kernel was (fakely) loaded
// before the checkpoint and the image is handed over.
func TestCheckpointStagesOutsideRun(t *testing.T) {
	needCheckpoint(t)
	if err := unix.Mount("tmpfs", contract.RunDir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(contract.RunDir, unix.MNT_DETACH) })
	for _, store := range []string{"disk", "ram"} {
		t.Run(store, func(t *testing.T) {
			disk := filepath.Join(t.TempDir(), "images")
			// About 1 MiB of private memory, 16 times /run. After READY
			// the shell forks no more (a fork caught by the freeze could
			// not be stopped in time under load): it waits reading a
			// FIFO that it holds open for writing too.
			fifo := filepath.Join(t.TempDir(), "wait")
			svc := startService(t, "big-"+store, exec.Command("sh", "-c", `x=$(head -c 1048576 /dev/zero | tr '\0' a); `+
				`mkfifo "$1" && exec 3<>"$1" && echo READY && read y <&3`, "sh", fifo), "READY")
			if store == "disk" {
				// The kernel is loaded before the checkpoint: a fake load
				// lets the hand-over go through.
				fakeLoads(t)
			}
			st, err := shutdown(t, store, disk, svc)
			if o := outcome(st, svc); o.Bytes < 1<<20 {
				t.Fatalf("unit outcome %+v: want an image of at least 1 MiB written", o)
			}
			if store == "disk" {
				if err != nil || st.State != contract.UpdateHandedOver {
					t.Fatalf("ShutdownCheckpoint = %v, status %+v; want the image handed over", err, st)
				}
				if ents, _ := os.ReadDir(disk); len(ents) != 1 {
					t.Fatalf("the disk store holds %v, want the one image", ents)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), "kexec_file_load") {
					t.Fatalf("ShutdownCheckpoint = %v, want only the load to fail", err)
				}
				svc.checkThawed(t)
			}
			if ents, _ := os.ReadDir(contract.RunDir); len(ents) != 0 {
				t.Fatalf("left in the run directory: %v", ents)
			}
		})
	}
}
