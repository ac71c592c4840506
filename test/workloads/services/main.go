// Command services holds the programs of the round trips of issue 13
// (test/roundtrip/services_test.go), one per subcommand. Each prints whole
// lines on stdout: "READY pid=P" once its state is built, "FAIL <what>" and
// exit 1 on a check that fails, "DONE ok" and exit 0 at the end. DIR/go
// tells it to go on after the restore.
//
//	services redis-client SOCKET DIR
//
// A client of a redis server outside the tree, with state on its
// connection (SELECT 5, CLIENT SETNAME). After the restore the connection
// must come back closed by its peer: the client reads end of file and
// reconnects, as redis clients do, instead of going on, unknowingly, on a
// new connection without that state.
//
//	services exec-child DIR
//
// A Go program holding a child started with os/exec: Go (1.23 and later)
// keeps a pidfd of the child and waits and signals through it. The child
// (a shell) lives across the checkpoint and restore; after the restore
// the parent signals it through os.Process (SIGUSR1, which the child
// traps), lets it exit with status 7, and Wait must report that status.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func say(format string, args ...any) { os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n") }

func fail(format string, args ...any) {
	say("FAIL "+format, args...)
	os.Exit(1)
}

// waitFile waits for DIR/name.
func waitFile(dir, name string) {
	for {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: services redis-client SOCKET DIR | exec-child DIR")
	}
	switch os.Args[1] {
	case "exec-child":
		if len(os.Args) != 3 {
			fail("usage: services exec-child DIR")
		}
		execChild(os.Args[2])
	case "exec-child-helper":
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		os.WriteFile(filepath.Join(os.Args[2], "up"), nil, 0o644)
		<-usr1
		os.WriteFile(filepath.Join(os.Args[2], "usr1"), nil, 0o644)
		waitFile(os.Args[2], "exit")
		os.Exit(7)
	case "redis-client":
		if len(os.Args) != 4 {
			fail("usage: services redis-client SOCKET DIR")
		}
		redisClient(os.Args[2], os.Args[3])
	default:
		fail("unknown mode %q", os.Args[1])
	}
}

// resp is a redis connection speaking RESP.
type resp struct {
	c net.Conn
	r *bufio.Reader
}

func dialRedis(sock string) *resp {
	c, err := net.Dial("unix", sock)
	if err != nil {
		fail("connect to redis: %v", err)
	}
	return &resp{c: c, r: bufio.NewReader(c)}
}

// do sends a command and returns its reply line (a bulk string's value).
func (r *resp) do(args ...string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := r.c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := r.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "$") && line != "$-1" {
		v, err := r.r.ReadString('\n')
		return strings.TrimRight(v, "\r\n"), err
	}
	return line, nil
}

func (r *resp) must(args ...string) string {
	v, err := r.do(args...)
	if err != nil {
		fail("%s: %v", args[0], err)
	}
	return v
}

// session sets up the connection's state: database 5 and a name.
func (r *resp) session() {
	if v := r.must("SELECT", "5"); v != "+OK" {
		fail("SELECT 5: %s", v)
	}
	if v := r.must("CLIENT", "SETNAME", "seamless-client"); v != "+OK" {
		fail("CLIENT SETNAME: %s", v)
	}
}

func redisClient(sock, dir string) {
	r := dialRedis(sock)
	r.session()
	if v := r.must("SET", "k", "in-db-5"); v != "+OK" {
		fail("SET: %s", v)
	}
	say("READY pid=%d", os.Getpid())
	waitFile(dir, "go")
	name, err := r.do("CLIENT", "GETNAME")
	switch {
	case err != nil:
		// What a client sees after its server went away: it reconnects
		// and sets its state up again.
		say("CLOSED %v", err)
		r.c.Close()
		r = dialRedis(sock)
		r.session()
		say("RECONNECTED name=%s", r.must("CLIENT", "GETNAME"))
	case name == "seamless-client":
		say("SAME connection")
	default:
		fail("the connection lost its state without a word: CLIENT GETNAME = %q", name)
	}
	if v := r.must("GET", "k"); v != "in-db-5" {
		fail("GET k in database 5 = %q", v)
	}
	say("DONE ok")
}

func execChild(dir string) {
	// The child (this program again) says USR1 once it got the signal,
	// then exits 7 when DIR/exit appears.
	cmd := exec.Command("/proc/self/exe", "exec-child-helper", dir)
	if err := cmd.Start(); err != nil {
		fail("start the child: %v", err)
	}
	waitFile(dir, "up")
	if !hasPidfd(os.Getpid()) {
		fail("the Go runtime holds no pidfd for its child")
	}
	say("READY pid=%d child=%d", os.Getpid(), cmd.Process.Pid)
	waitFile(dir, "go")
	if !hasPidfd(os.Getpid()) {
		fail("the pidfd is gone after the restore")
	}
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		fail("signal the child: %v", err)
	}
	waitFile(dir, "usr1")
	os.WriteFile(filepath.Join(dir, "exit"), nil, 0o644)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		fail("Wait = %v, want exit status 7", err)
	}
	say("WAITED status=%d", ee.ExitCode())
	say("DONE ok")
}

// hasPidfd reports whether process pid holds a pidfd.
func hasPidfd(pid int) bool {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); l == "anon_inode:[pidfd]" {
			return true
		}
	}
	return false
}
