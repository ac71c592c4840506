package restored

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLoadPeerDiag: the warm-up of sock_diag waits for PID 1's switch to
// the real root, and ends there, or when the daemon is done, or at once
// when PID 1 cannot be seen.
func TestLoadPeerDiag(t *testing.T) {
	defer func(v bool) { usePeerPIDFD = v }(usePeerPIDFD)
	usePeerPIDFD = false // the loop of kernels before 6.5
	tests := []struct {
		name      string
		moved     func(calls int) (bool, bool, error)
		closeDone bool
	}{
		{"switches after a while", func(n int) (bool, bool, error) { return n > 3, true, nil }, false},
		{"PID 1 out of sight", func(int) (bool, bool, error) { return false, false, nil }, false},
		{"PID 1 unreadable", func(int) (bool, bool, error) { return false, true, unix.EIO }, false},
		{"never switches, daemon done", func(int) (bool, bool, error) { return false, true, nil }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			done, ended := make(chan struct{}), make(chan struct{})
			go func() {
				loadPeerDiag(func() (bool, bool, error) { calls++; return tt.moved(calls) }, done)
				close(ended)
			}()
			if tt.closeDone {
				select {
				case <-ended:
					t.Fatal("ended before the root switched or the daemon was done")
				case <-time.After(300 * time.Millisecond):
				}
				close(done)
			}
			select {
			case <-ended:
			case <-time.After(5 * time.Second):
				t.Fatal("still waiting")
			}
		})
	}
}

func TestPeerPIDFDWorks(t *testing.T) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
		t.Skip(err)
	}
	want := major > 6 || major == 6 && minor >= 5
	if got := peerPIDFDWorks(); got != want {
		t.Errorf("peerPIDFDWorks() = %v on %d.%d, want %v", got, major, minor, want)
	}
}
