package inet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// bin holds the seamless binary and the workloads, built once by TestMain.
var bin string

// notRoot says why every test of the package skips: they make network
// namespaces and use TCP_REPAIR, which need root.
var notRoot string

// needRoot skips a test, visibly, when the tests do not run as root.
func needRoot(t *testing.T) {
	t.Helper()
	if notRoot != "" {
		t.Skip(notRoot)
	}
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		notRoot = "the inet tests need root (network namespaces, TCP_REPAIR)"
		return m.Run() // every test skips, each in its own name
	}
	// Restored processes are reparented to us: PID 1 here does not reap.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Println("PR_SET_CHILD_SUBREAPER:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "seamless-inet-test")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = dir
	builds := [][]string{
		{"go", "build", "-o", filepath.Join(dir, "seamless"), "../../cmd/seamless"},
		{"gcc", "-O2", "-Wall", "-o", filepath.Join(dir, "tcpecho"), "testdata/tcpecho.c"},
		{"gcc", "-O2", "-Wall", "-o", filepath.Join(dir, "udpq"), "testdata/udpq.c"},
		{"gcc", "-O2", "-Wall", "-o", filepath.Join(dir, "sockstate"), "testdata/sockstate.c"},
		{"gcc", "-O2", "-Wall", "-o", filepath.Join(dir, "ebpffilter"), "testdata/ebpffilter.c"},
		{"gcc", "-O2", "-Wall", "-o", filepath.Join(dir, "binds"), "testdata/binds.c"},
		{"gcc", "-O2", "-Wall", "-o", filepath.Join(dir, "acceptor"), "testdata/acceptor.c"},
	}
	if prebuilt := os.Getenv("SEAMLESS_BIN"); prebuilt != "" {
		// A prebuilt seamless (an older one, to see a test fail without a fix).
		builds = builds[1:]
		if err := os.Symlink(prebuilt, filepath.Join(dir, "seamless")); err != nil {
			fmt.Println(err)
			return 1
		}
	}
	for _, b := range builds {
		if out, err := exec.Command(b[0], b[1:]...).CombinedOutput(); err != nil {
			fmt.Printf("%v: %v\n%s", b, err, out)
			return 1
		}
	}
	return m.Run()
}
