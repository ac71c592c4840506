package roundtrip

// Round trips of issue 13 on real programs: the services people run.
//
//   - TestPostgresUnixClient: PostgreSQL holding a connection it accepted
//     from psql, outside the tree, on its unix socket;
//   - TestRedisClientState: a redis client in the tree with state on its
//     connection (SELECT, CLIENT SETNAME) to redis-server outside it;
//   - TestSparseMemfd: a 1 GiB memfd with 4 MiB written (ZGC's heap);
//   - TestGoExecChild: a Go program's os/exec child, held through a pidfd;
//   - TestForkSharing and TestRedisBGSAVE: memory shared copy-on-write
//     between a parent and its forked child (a 100 MiB fork; redis-server
//     with its BGSAVE child) is stored once and shared again;
//   - TestRefusedUserNS: a process in a user namespace of its own
//     (PrivateUsers=, as Debian's redis-server.service has) is refused.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seamless-linux/seamless/internal/precheck"
)

var (
	servicesOnce sync.Once
	servicesBin  string
	servicesErr  error
)

// buildServices builds test/workloads/services once.
func buildServices(t *testing.T) string {
	t.Helper()
	needSeamless(t)
	servicesOnce.Do(func() {
		servicesBin = filepath.Join(binDir, "services")
		cmd := exec.Command("go", "build", "-o", servicesBin, "github.com/seamless-linux/seamless/test/workloads/services")
		cmd.Dir = moduleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			servicesErr = fmt.Errorf("build services: %v\n%s", err, out)
		}
	})
	if servicesErr != nil {
		t.Fatal(servicesErr)
	}
	return servicesBin
}

// lineLog is the output of a started program, line by line.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// wait waits for a line starting with prefix and returns it; a FAIL line
// fails t.
func (l *lineLog) wait(t *testing.T, prefix string) string {
	t.Helper()
	var found string
	waitFor(t, "a line "+prefix, deadline, func() (bool, string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, s := range l.lines {
			if strings.HasPrefix(s, "FAIL") {
				t.Fatalf("the program failed: %s\noutput:\n%s", s, strings.Join(l.lines, "\n"))
			}
			if strings.HasPrefix(s, prefix) {
				found = s
				return true, ""
			}
		}
		return false, strings.Join(l.lines, "\n")
	})
	return found
}

// start starts cmd, logged in p's directory (startLogged), as the root of
// the tree under test, and reaps it when it ends.
func (p *progRun) start(cmd *exec.Cmd) *lineLog {
	p.t.Helper()
	log := startLogged(p.t, cmd, p.dir)
	p.root = cmd.Process.Pid
	go cmd.Wait()
	return log
}

// startLogged starts cmd with its output (stdout and stderr) in a lineLog
// read through a file: the program keeps writing to it after a restore.
func startLogged(t *testing.T, cmd *exec.Cmd, dir string) *lineLog {
	t.Helper()
	path := filepath.Join(dir, "out.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &lineLog{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		// Follow the file as tail -f does.
		r, err := os.Open(path)
		if err != nil {
			return
		}
		defer r.Close()
		var pending string
		buf := make([]byte, 4096)
		for ctx.Err() == nil {
			n, _ := r.Read(buf)
			if n == 0 {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			pending += string(buf[:n])
			for {
				i := strings.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				l.mu.Lock()
				l.lines = append(l.lines, pending[:i])
				l.mu.Unlock()
				pending = pending[i+1:]
			}
		}
	}()
	return l
}

// checkpointRestore checkpoints the tree of root (killed) and restores it,
// returning the restore's run (its warnings are on stderr).
func checkpointRestore(t *testing.T, root int, img string, restoreArgs ...string) cliResult {
	t.Helper()
	tree := append([]int{root}, descendants(root)...)
	cp := runSeamless("checkpoint", "--pid", strconv.Itoa(root), "--dir", img)
	if cp.code != 0 {
		t.Fatalf("%s", cp)
	}
	// Zombies of the tree are reparented to this test (the subreaper):
	// their PIDs are free once it reaps them.
	for _, pid := range tree {
		if !waitGone(pid, deadline) {
			t.Fatalf("process %d still exists after the checkpoint (%s)", pid, procState(pid))
		}
	}
	rs := runSeamless(append([]string{"restore", "--dir", img}, restoreArgs...)...)
	if rs.code != 0 {
		t.Fatalf("%s", rs)
	}
	if got, err := strconv.Atoi(strings.TrimSpace(rs.stdout)); err != nil || got != root {
		t.Fatalf("seamless restore printed %q, want the root PID %d", rs.stdout, root)
	}
	return rs
}

// postgresBin finds Debian's PostgreSQL server binaries, installing them
// if need be.
func postgresBin(t *testing.T) string {
	t.Helper()
	needPackage(t, "psql", "postgresql")
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d
		}
	}
	t.Skip("no /usr/lib/postgresql/*/bin/postgres")
	return ""
}

// TestPostgresUnixClient checkpoints a PostgreSQL server while psql, outside
// the tree, holds a session with an open transaction on its unix socket.
// The server's end of that connection comes back closed by its peer: the
// backend reads end of file and ends as after a client disconnect (the
// transaction rolls back), the restore says so, and new clients are served
// with the committed data.
func TestPostgresUnixClient(t *testing.T) {
	needSeamless(t)
	bin := postgresBin(t)
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("no postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	p := newProgRun(t, "postgres")
	if err := os.Chown(p.dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	asPostgres := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	data := filepath.Join(p.dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres")
	initdb.SysProcAttr = asPostgres
	initdb.Dir = p.dir
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	server := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", p.dir,
		"-c", "listen_addresses=", "-c", "logging_collector=off", "-c", "shared_buffers=16MB")
	server.SysProcAttr = &syscall.SysProcAttr{Credential: asPostgres.Credential}
	server.Dir = p.dir
	log := p.start(server)
	log.wait(t, "") // any line: started
	sock := filepath.Join(p.dir, ".s.PGSQL.5432")
	psql := func(sql string) string {
		t.Helper()
		var out string
		waitFor(t, "psql "+sql, deadline, func() (bool, string) {
			b, err := exec.Command("psql", "-h", p.dir, "-U", "postgres", "-X", "-A", "-t", "-c", sql).CombinedOutput()
			out = strings.TrimSpace(string(b))
			return err == nil, out
		})
		return out
	}
	psql("create table t (x int); insert into t values (1), (2), (3)")

	// The outside client: a psql session reading from a pipe, with a
	// transaction left open.
	client := exec.Command("psql", "-h", p.dir, "-U", "postgres", "-X", "-A", "-t")
	in, err := client.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	clientDir := t.TempDir()
	clog := startLogged(t, client, clientDir)
	t.Cleanup(func() { client.Process.Kill(); client.Wait() })
	io.WriteString(in, "begin; insert into t values (99); select 'in-transaction', pg_backend_pid();\n")
	line := clog.wait(t, "in-transaction|")
	backend, err := strconv.Atoi(strings.TrimPrefix(line, "in-transaction|"))
	if err != nil {
		t.Fatalf("psql printed %q", line)
	}
	if psql("select count(*) from t where x = 99") != "0" {
		t.Fatal("the open transaction's row is visible outside it")
	}
	for _, pid := range descendants(p.root) {
		p.seen[pid] = true
	}

	rs := checkpointRestore(t, p.root, filepath.Join(t.TempDir(), "image"))
	t.Logf("restore: %s", strings.TrimSpace(rs.stderr))
	for _, want := range []string{"accepted by the listener " + sock, "closed by its peer", fmt.Sprintf("process %d ", backend)} {
		if !strings.Contains(rs.stderr, want) {
			t.Fatalf("the restore's warnings do not say %q:\n%s", want, rs.stderr)
		}
	}
	// The backend of the outside session reads end of file and ends; the
	// others, and the postmaster, run on.
	if !waitGone(backend, deadline) {
		t.Fatalf("the backend %d of the closed session still runs (%s)", backend, procState(backend))
	}
	if !alive(p.root) {
		t.Fatalf("the postmaster %d is not running after the restore (%s)", p.root, procState(p.root))
	}
	if got := psql("select count(*), sum(x) from t"); got != "3|6" {
		t.Fatalf("after the restore: count, sum = %q, want 3|6 (the open transaction rolled back)", got)
	}
	// The client outside finds its session gone, as after a server
	// restart (psql reading a script gives up).
	io.WriteString(in, "select 'after', count(*) from t;\n")
	in.Close()
	clog.wait(t, "connection to server was lost")
	t.Logf("psql outside:\n%s", clog)
	_ = log
}

// TestRedisClientState checkpoints a redis client with state on its unix
// connection to a redis server outside the tree (database 5, a client
// name). The connection comes back closed by its peer, and the client sets
// its state up again on a new one; before, a new connection by name stood
// in for it silently, in database 0 and without a name.
func TestRedisClientState(t *testing.T) {
	bin := buildServices(t)
	needPackage(t, "redis-server", "redis-server")
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "redis.sock")
	srv := exec.Command("redis-server", "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no", "--dir", dir)
	startLogged(t, srv, dir)
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	waitFor(t, "redis socket", deadline, func() (bool, string) {
		_, err := os.Stat(sock)
		return err == nil, fmt.Sprint(err)
	})
	p := newProgRun(t, "redis-client")
	cmd := exec.Command(bin, "redis-client", sock, p.dir)
	log := p.start(cmd)
	log.wait(t, "READY")
	rs := checkpointRestore(t, p.root, filepath.Join(p.dir, "image"))
	os.WriteFile(filepath.Join(p.dir, "go"), nil, 0o644)
	log.wait(t, "DONE ok")
	if got := log.wait(t, "RECONNECTED"); got != "RECONNECTED name=seamless-client" {
		t.Fatalf("after reconnecting: %q", got)
	}
	if !strings.Contains(rs.stderr, sock) || !strings.Contains(rs.stderr, "closed by its peer") {
		t.Fatalf("the restore does not warn that the connection to %s comes back closed:\n%s", sock, rs.stderr)
	}
	t.Logf("client:\n%s", log)
}

// TestSparseMemfd checkpoints a 1 GiB memfd of which 4 MiB is written (the
// shape of ZGC's heap: mapped twice, partly committed with fallocate):
// the image holds only the written pages, and after the restore the memfd
// holds no more memory than before.
func TestSparseMemfd(t *testing.T) {
	buildExtra(t, "sparsememfd")
	p := newProgRun(t, "sparsememfd")
	cmd := exec.Command(filepath.Join(binDir, "sparsememfd"), p.dir)
	log := p.start(cmd)
	log.wait(t, "READY")
	img := filepath.Join(t.TempDir(), "image")
	checkpointRestore(t, p.root, img)
	size := dirSize(img)
	t.Logf("image: %.1f MiB", float64(size)/(1<<20))
	if size > 10<<20 {
		t.Errorf("the image of a 1 GiB memfd with 4 MiB written is %d bytes, want at most 10 MiB", size)
	}
	os.WriteFile(filepath.Join(p.dir, "go"), nil, 0o644)
	done := log.wait(t, "DONE ok")
	blocks, _ := strconv.ParseInt(strings.TrimPrefix(done, "DONE ok blocks="), 10, 64)
	t.Logf("memfd after the restore: %.1f MiB in use", float64(blocks*512)/(1<<20))
	if blocks*512 > 10<<20 {
		t.Errorf("after the restore the memfd holds %d bytes, want at most 10 MiB", blocks*512)
	}
}

// TestGoExecChild checkpoints a Go program whose child, started with
// os/exec, is held through a pidfd (Go 1.23 and later): the child lives
// across the restore, the parent signals it through os.Process and its
// Wait reports the child's exit status.
func TestGoExecChild(t *testing.T) {
	bin := buildServices(t)
	p := newProgRun(t, "exec-child")
	cmd := exec.Command(bin, "exec-child", p.dir)
	log := p.start(cmd)
	ready := log.wait(t, "READY")
	var pid, child int
	if _, err := fmt.Sscanf(ready, "READY pid=%d child=%d", &pid, &child); err != nil {
		t.Fatalf("%q: %v", ready, err)
	}
	checkpointRestore(t, p.root, filepath.Join(t.TempDir(), "image"))
	if !alive(child) {
		t.Fatalf("the child %d is not running after the restore (%s)", child, procState(child))
	}
	if ppid, _ := parentOf(child); ppid != pid {
		t.Fatalf("the child's parent is %d, want %d", ppid, pid)
	}
	os.WriteFile(filepath.Join(p.dir, "go"), nil, 0o644)
	log.wait(t, "DONE ok")
	if got := log.wait(t, "WAITED"); got != "WAITED status=7" {
		t.Fatalf("Wait after the restore: %q", got)
	}
}

// pss is the proportional set size of pid in bytes (smaps_rollup).
func pss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Pss:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}

// startReady builds the workload name, starts it with its directory and
// returns once it printed its READY line.
func startReady(t *testing.T, name string) (*progRun, *lineLog, string) {
	t.Helper()
	buildExtra(t, name)
	p := newProgRun(t, name)
	log := p.start(exec.Command(filepath.Join(binDir, name), p.dir))
	return p, log, log.wait(t, "READY")
}

// TestForkSharing checkpoints a 100 MiB parent and the child it forked,
// which still share 95 MiB copy-on-write: the shared pages are stored once
// (the image is not twice the parent's memory), and after the restore they
// are shared again (the two processes' proportional set sizes add up to
// about one copy). The child's own pages and the pages it never had (the
// parent wrote them after the fork: zeros for the child) come back too.
func TestForkSharing(t *testing.T) {
	p, log, ready := startReady(t, "cowfork")
	var pid, child int
	if _, err := fmt.Sscanf(ready, "READY pid=%d child=%d", &pid, &child); err != nil {
		t.Fatalf("%q: %v", ready, err)
	}
	before := pss(pid) + pss(child)
	img := filepath.Join(t.TempDir(), "image")
	rs := checkpointRestore(t, p.root, img, "-v")
	size := dirSize(img)
	// The parent's pages are filled through a userfaultfd (unless huge
	// pages are "always": then written, as a fault would make them huge);
	// the child's own pages land where it shares its parent's, which only
	// a write can replace.
	copied, written, ok := filled(rs.stderr)
	t.Logf("private memory: %.1f MiB through userfaultfd, %.1f MiB written", float64(copied)/(1<<20), float64(written)/(1<<20))
	if !ok {
		t.Errorf("seamless restore -v did not say how it filled memory: %s", rs.stderr)
	} else if thp, _ := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled"); !strings.Contains(string(thp), "[always]") && (copied < 90<<20 || written == 0) {
		t.Errorf("%d bytes through userfaultfd and %d written: want the parent's 100 MiB through it and the child's own pages written", copied, written)
	}
	after := pss(pid) + pss(child)
	t.Logf("PSS of parent and child: %.1f MiB before, %.1f MiB after the restore; image %.1f MiB",
		float64(before)/(1<<20), float64(after)/(1<<20), float64(size)/(1<<20))
	os.WriteFile(filepath.Join(p.dir, "go"), nil, 0o644)
	log.wait(t, "CHILD ok")
	log.wait(t, "DONE ok")
	// One copy of the parent's 100 MiB and the child's 1 MiB, with room
	// for the programs themselves; two copies would be over 190 MiB.
	if size > 130<<20 {
		t.Errorf("the image is %.1f MiB, want at most 130 MiB: the shared pages were stored twice", float64(size)/(1<<20))
	}
	if after > 130<<20 {
		t.Errorf("after the restore parent and child use %.1f MiB (PSS), want at most 130 MiB: the pages are no longer shared", float64(after)/(1<<20))
	}
}

// TestHugePageAdvice checkpoints a process with a mapping advised huge
// pages and one advised none: after the restore each is backed as the
// process asked (the advice is given back before the pages are filled,
// and the mapping with huge pages is written, not filled through the
// userfaultfd, which makes small pages only). The huge one must have huge
// pages after the restore if it had them before (the kernel may lack free
// huge pages: then the test says so and checks the small one only).
func TestHugePageAdvice(t *testing.T) {
	p, log, ready := startReady(t, "hugepages")
	var pid int
	var huge, small uint64
	if _, err := fmt.Sscanf(ready, "READY pid=%d huge=%x small=%x", &pid, &huge, &small); err != nil {
		t.Fatalf("%q: %v", ready, err)
	}
	hugeBefore, smallBefore := anonHuge(t, pid, huge), anonHuge(t, pid, small)
	checkpointRestore(t, p.root, filepath.Join(t.TempDir(), "image"))
	hugeAfter, smallAfter := anonHuge(t, pid, huge), anonHuge(t, pid, small)
	t.Logf("AnonHugePages: advised huge %d kB before, %d kB after; advised none %d kB before, %d kB after", hugeBefore, hugeAfter, smallBefore, smallAfter)
	if hugeBefore > 0 && hugeAfter == 0 {
		t.Errorf("the mapping advised huge pages had %d kB of them before the restore and none after", hugeBefore)
	}
	if hugeBefore == 0 {
		t.Logf("the kernel gave the process no huge pages (transparent huge pages off, or none free): only the other mapping is checked")
	}
	if smallAfter != 0 {
		t.Errorf("the mapping advised no huge pages has %d kB of them after the restore", smallAfter)
	}
	os.WriteFile(filepath.Join(p.dir, "go"), nil, 0o644)
	log.wait(t, "DONE ok")
}

// anonHuge is the AnonHugePages (kB) of the mapping of pid that starts at
// start (/proc/PID/smaps).
func anonHuge(t *testing.T, pid int, start uint64) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			lo, _, _ := strings.Cut(f[0], "-")
			v, err := strconv.ParseUint(lo, 16, 64)
			in = err == nil && v == start
			continue
		}
		if v, ok := strings.CutPrefix(l, "AnonHugePages:"); ok && in {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	t.Fatalf("process %d has no mapping at %#x", pid, start)
	return 0
}

// filled reads the bytes a restore filled through a userfaultfd and wrote,
// from what seamless restore -v said.
func filled(stderr string) (copied, written int64, ok bool) {
	for _, l := range strings.Split(stderr, "\n") {
		if _, err := fmt.Sscanf(l, "seamless restore: private memory: %d bytes filled through userfaultfd, %d written", &copied, &written); err == nil {
			return copied, written, true
		}
	}
	return 0, 0, false
}

// TestRedisBGSAVE checkpoints redis-server while its BGSAVE child writes
// the snapshot (slowed down with rdb-key-save-delay): the two share the
// dataset copy-on-write; the image holds it once and after the restore
// they share it again, the child finishes the snapshot and the restored
// server reports it saved, with every key.
func TestRedisBGSAVE(t *testing.T) {
	needSeamless(t)
	needPackage(t, "redis-server", "redis-server")
	p := newProgRun(t, "redis-bgsave")
	sock := filepath.Join(p.dir, "redis.sock")
	srv := exec.Command("redis-server", "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
		"--dir", p.dir, "--rdbcompression", "no", "--enable-debug-command", "yes")
	startLogged(t, srv, p.dir)
	p.root = srv.Process.Pid
	go srv.Wait()
	cli := func(args ...string) string {
		t.Helper()
		var out string
		waitFor(t, "redis-cli "+strings.Join(args, " "), deadline, func() (bool, string) {
			b, err := exec.Command("redis-cli", append([]string{"-s", sock}, args...)...).CombinedOutput()
			out = strings.TrimSpace(string(b))
			return err == nil && !strings.HasPrefix(out, "ERR") && !strings.Contains(out, "Connection refused"), out
		})
		return out
	}
	const keys = 200000
	cli("DEBUG", "POPULATE", strconv.Itoa(keys), "key", "200")
	cli("CONFIG", "SET", "rdb-key-save-delay", "40") // about 8 s for the snapshot
	cli("BGSAVE")
	var child int
	waitFor(t, "the BGSAVE child", deadline, func() (bool, string) {
		kids := children(p.root)
		if len(kids) == 1 {
			child = kids[0]
		}
		return child != 0, fmt.Sprint(kids)
	})
	before := pss(p.root) + pss(child)
	img := filepath.Join(t.TempDir(), "image")
	checkpointRestore(t, p.root, img)
	size := dirSize(img)
	after := pss(p.root) + pss(child)
	t.Logf("redis-server and its BGSAVE child: PSS %.1f MiB before, %.1f MiB after the restore; image %.1f MiB",
		float64(before)/(1<<20), float64(after)/(1<<20), float64(size)/(1<<20))
	waitFor(t, "the snapshot to finish", deadline, func() (bool, string) {
		info := cli("INFO", "persistence")
		return strings.Contains(info, "rdb_bgsave_in_progress:0") && strings.Contains(info, "rdb_last_bgsave_status:ok"), info
	})
	if got := cli("DBSIZE"); got != strconv.Itoa(keys) {
		t.Fatalf("DBSIZE after the restore = %s, want %d", got, keys)
	}
	if st, err := os.Stat(filepath.Join(p.dir, "dump.rdb")); err != nil || st.Size() < keys*200 {
		t.Fatalf("the snapshot the restored child wrote: %v, %v", st, err)
	}
	if after > before*3/2 {
		t.Errorf("after the restore the server and its child use %.1f MiB (PSS), before %.1f MiB: the dataset is no longer shared",
			float64(after)/(1<<20), float64(before)/(1<<20))
	}
}

// TestRefusedUserNS: a process in a user namespace of its own (what
// systemd's PrivateUsers= makes, as in Debian's redis-server.service) is
// refused at checkpoint, naming the user namespace and the way out, and
// runs on; seamless plan refuses it for the same reason. Before, it was
// checkpointed and restored in seamless's namespace, where its IDs and
// capabilities mean more.
func TestRefusedUserNS(t *testing.T) {
	needSeamless(t)
	cmd := exec.Command("sleep", "600")
	// PrivateUsers= maps root and the service's user to themselves.
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: 65534, HostID: 65534, Size: 1}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: ids, GidMappings: ids,
		Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := cmd.Start(); err != nil {
		t.Skipf("no user namespace here: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	want := []string{fmt.Sprintf("process %d runs in a user namespace of its own", pid), "PrivateUsers=no"}
	cp := runSeamless("checkpoint", "--pid", strconv.Itoa(pid), "--dir", filepath.Join(t.TempDir(), "image"))
	if cp.code == 0 {
		t.Fatalf("the checkpoint of a process in a user namespace of its own succeeded:\n%s", cp)
	}
	for _, w := range want {
		if !strings.Contains(cp.stderr, w) {
			t.Errorf("the checkpoint's refusal does not say %q:\n%s", w, cp)
		}
	}
	if !alive(pid) {
		t.Fatalf("process %d is gone after the refused checkpoint (%s)", pid, procState(pid))
	}
	var probs []string
	for _, p := range precheck.Check([]int{pid}).Problems {
		probs = append(probs, p.String())
	}
	for _, w := range want {
		if !strings.Contains(strings.Join(probs, "\n"), w) {
			t.Errorf("the checkpoint refuses %q but seamless plan does not name it; plan found:\n%s", w, strings.Join(probs, "\n"))
		}
	}
}
