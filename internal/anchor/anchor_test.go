package anchor

import (
	"bufio"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/restored"
)

// silentDaemonEnv names the socket a child of the test binary listens on
// as a restore daemon that takes connections and answers nothing.
const silentDaemonEnv = "SEAMLESS_TEST_SILENT_DAEMON"

func TestMain(m *testing.M) {
	if path := os.Getenv(silentDaemonEnv); path != "" {
		l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
		if err != nil {
			os.Exit(2)
		}
		os.Stdout.WriteString("listening\n")
		held := map[*net.UnixConn]bool{} // read nothing, answer nothing
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				os.Exit(3)
			}
			held[c] = true
		}
	}
	os.Exit(m.Run())
}

// TestAskSilentDaemon: an anchor whose daemon takes its request and then
// answers nothing, not even pings, gives up at its first unanswered ping
// instead of at its timeout, and says why.
func TestAskSilentDaemon(t *testing.T) {
	t.Cleanup(contract.SetDirs(t.TempDir(), t.TempDir()))
	defer func(every, wait time.Duration) { PingEvery, restored.PingWait = every, wait }(PingEvery, restored.PingWait)
	PingEvery, restored.PingWait = 100*time.Millisecond, 300*time.Millisecond
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d := &exec.Cmd{Path: exe, Args: []string{"silent-daemon"}, Env: []string{silentDaemonEnv + "=" + contract.SocketPath()}}
	out, err := d.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { d.Process.Kill(); d.Wait() }()
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("the stand-in daemon did not listen: %v", err)
	}
	// Its own timeout would say "no answer within 1h0m0s".
	_, err = ask("u.service", time.Hour)
	if !errors.Is(err, errLost) || !strings.Contains(err.Error(), "answers nothing") {
		t.Fatalf("ask of a silent daemon: %v, want errLost naming it", err)
	}
}
