package restored

import (
	"encoding/json"
	"net"
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
	"github.com/seamless-linux/seamless/internal/restored/restoredtest"
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

		// A daemon answers: nothing to do.
		ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: contract.SocketPath(), Net: "unixpacket"})
		if err != nil {
			t.Errorf("listen: %v", err)
			return
		}
		ln.SetUnlinkOnClose(false)
		go answerPings(ln)
		if err := Settle(unit, cg, &strings.Builder{}); err != nil {
			t.Errorf("Settle with a daemon: %v", err)
		}
		if s, _ := contract.ReadState(); s.Unit(unit).State != contract.Restoring || !alive(left.Process.Pid) {
			t.Errorf("Settle acted while a daemon answered")
		}
		ln.Close() // the daemon dies; its socket file stays

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

// answerPings answers every ping on l as the daemon does, until l closes.
func answerPings(l *net.UnixListener) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		if n, err := c.Read(buf); err == nil {
			var req Request
			if json.Unmarshal(buf[:n], &req) == nil && req.Ping {
				b, _ := json.Marshal(Reply{Alive: true})
				c.Write(b)
			}
		}
		c.Close()
	}
}

func TestMain(m *testing.M) {
	restoredtest.ServeIfAsked()
	os.Exit(m.Run())
}

// TestSettleHungDaemon: a daemon that takes connections but answers
// nothing (here one stopped by SIGSTOP) holds its units no longer than
// PingWait: Settle kills it, and only it, and the unit starts cold. A
// listener that is not the daemon is never killed.
func TestSettleHungDaemon(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	defer func(w time.Duration) { PingWait = w }(PingWait)
	PingWait = 500 * time.Millisecond
	for _, tc := range []struct {
		name   string
		argv0  string
		killed bool
	}{
		{"the daemon", DaemonName, true},
		{"another process", "not-the-daemon", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(contract.SetDirs(t.TempDir(), t.TempDir()))
			unit := "u.service"
			st := contract.State{Daemon: 1 << 22, Units: []contract.UnitState{{Unit: unit, State: contract.Pending}}}
			if err := contract.WriteState(&st); err != nil {
				t.Fatal(err)
			}
			d := restoredtest.StartSilent(t, tc.argv0, contract.SocketPath())
			d.Process.Signal(syscall.SIGSTOP)

			var log strings.Builder
			err := Settle(unit, "/seamless-test-no-such-cgroup", &log)
			s, _ := contract.ReadState()
			if !tc.killed {
				if err == nil || !strings.Contains(err.Error(), "not "+DaemonName) || !alive(d.Process.Pid) || s.Unit(unit).State != contract.Pending {
					t.Fatalf("Settle with a stopped listener that is not the daemon: %v; alive %v; state %+v", err, alive(d.Process.Pid), s.Unit(unit))
				}
				return
			}
			t.Logf("%s (%v)", log.String(), err)
			var ws syscall.WaitStatus
			if _, werr := syscall.Wait4(d.Process.Pid, &ws, syscall.WNOHANG, nil); werr != nil || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Errorf("the hung daemon was not killed: %v %v", ws, werr)
			}
			if u := s.Unit(unit); u.State != contract.Cold || !strings.Contains(u.Reason, "did not answer") {
				t.Errorf("state after Settle: %+v", u)
			}
		})
	}
}
