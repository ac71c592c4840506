package anchor

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/restored"
	"github.com/seamless-linux/seamless/internal/restored/restoredtest"
)

func TestMain(m *testing.M) {
	restoredtest.ServeIfAsked()
	os.Exit(m.Run())
}

// TestAskSilentDaemon: an anchor whose daemon takes its request and then
// answers nothing, not even pings, gives up at its first unanswered ping
// instead of at its timeout, and says why.
func TestAskSilentDaemon(t *testing.T) {
	t.Cleanup(contract.SetDirs(t.TempDir(), t.TempDir()))
	defer func(every, wait time.Duration) { PingEvery, restored.PingWait = every, wait }(PingEvery, restored.PingWait)
	PingEvery, restored.PingWait = 100*time.Millisecond, 300*time.Millisecond
	restoredtest.StartSilent(t, "silent-daemon", contract.SocketPath())
	// Its own timeout would say "no answer within 1h0m0s".
	_, err := ask("u.service", time.Hour)
	if !errors.Is(err, errLost) || !strings.Contains(err.Error(), "answers nothing") {
		t.Fatalf("ask of a silent daemon: %v, want errLost naming it", err)
	}
}
