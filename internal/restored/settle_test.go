package restored

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/netlock"
	"github.com/seamless-linux/seamless/internal/units"
)

// TestSettle: a unit that a dead daemon left unsettled has what is left in
// its cgroup killed, its network lock removed and is recorded as started
// cold; while a daemon listens, or once the unit is settled, nothing is
// done.
func TestSettle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	root, err := units.CgroupRoot()
	if err != nil {
		t.Skip(err)
	}
	dir := filepath.Join(root, "seamless-settle-test-"+strings.ReplaceAll(t.Name(), "/", "-")+".service")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		for i := 0; i < 100 && os.Remove(dir) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	})
	cg := "/" + filepath.Base(dir)
	f, _ := os.Open(dir)
	left := exec.Command("sleep", "100")
	left.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	if err := left.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer func() { left.Process.Kill(); left.Wait() }()

	t.Cleanup(contract.SetDirs(t.TempDir(), t.TempDir()))
	os.MkdirAll(filepath.Join(contract.IncomingDir(), "u.service", "1"), 0o700)
	unit := "u.service"
	st := contract.State{Daemon: 1 << 22, Units: []contract.UnitState{{Unit: unit, State: contract.Restoring,
		Trees: []contract.TreeState{{Root: 1, Locks: []string{"seamless-test-lock"}}}}}}
	if err := contract.WriteState(&st); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // this thread alone moves to a namespace of its own
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		l, err := netlock.Open(nil, "seamless-test-lock")
		if err != nil {
			t.Errorf("lock: %v", err)
			return
		}
		l.Add(netlock.Flow{Proto: unix.IPPROTO_TCP, Local: netip.MustParseAddrPort("10.0.2.15:11211")})
		l.Release()

		// A daemon listens: nothing to do.
		sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
		if err == nil {
			err = unix.Bind(sock, &unix.SockaddrUnix{Name: contract.SocketPath()})
		}
		if err == nil {
			err = unix.Listen(sock, 1)
		}
		if err != nil {
			t.Errorf("listen: %v", err)
			return
		}
		if err := Settle(unit, cg, &strings.Builder{}); err != nil {
			t.Errorf("Settle with a daemon: %v", err)
		}
		if s, _ := contract.ReadState(); s.Unit(unit).State != contract.Restoring || !alive(left.Process.Pid) {
			t.Errorf("Settle acted while a daemon listened")
		}
		unix.Close(sock) // the daemon dies; its socket file stays

		var log strings.Builder
		if err := Settle(unit, cg, &log); err != nil {
			t.Errorf("Settle: %v", err)
		}
		t.Logf("%s", log.String())
		if _, err := os.Stat(contract.IncomingDir()); !os.IsNotExist(err) {
			t.Errorf("the dead daemon's links are still there (%v)", err)
		}
		if chains, err := netlock.List(nil); err != nil || len(chains) != 0 {
			t.Errorf("lock chains after Settle: %v (%v)", chains, err)
		}
		s, err := contract.ReadState()
		if err != nil || s.Unit(unit).State != contract.Cold || !strings.Contains(s.Unit(unit).Reason, "daemon ended") {
			t.Errorf("state after Settle: %+v, %v", s.Unit(unit), err)
		}
	}()
	<-done
	left.Wait()
	if left.ProcessState == nil || left.ProcessState.Success() {
		t.Fatalf("the process left in the unit was not killed: %v", left.ProcessState)
	}
}

func alive(pid int) bool { return unix.Kill(pid, 0) == nil }
