// Package restoredtest stands in for a restore daemon in tests: a process
// that takes connections on the daemon's socket (the kernel queues them)
// and answers nothing, as a stopped or hung daemon does.
package restoredtest

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"testing"
)

// env names the socket a child of the test binary is to listen on.
const env = "SEAMLESS_TEST_SILENT_DAEMON"

// ServeIfAsked is for the start of a test binary's TestMain: in the child
// StartSilent starts, it listens and never accepts, and does not return.
func ServeIfAsked() {
	path := os.Getenv(env)
	if path == "" {
		return
	}
	if _, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"}); err != nil {
		os.Exit(2)
	}
	os.Stdout.WriteString("listening\n")
	select {}
}

// StartSilent starts the test binary again, named argv0, as a silent
// daemon listening on path, and returns it once it listens. It is killed
// when the test ends.
func StartSilent(t testing.TB, argv0, path string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d := &exec.Cmd{Path: exe, Args: []string{argv0}, Env: []string{env + "=" + path}}
	out, err := d.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Process.Kill(); d.Wait() })
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("the stand-in daemon did not listen: %v", err)
	}
	return d
}
