package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A Hold is a connection from the host to a service of the guest, through a
// port forward, opened before the update (host action holds-start) and used
// again after it (holds-check): it must be the same connection, with the
// same state on the server's side, not a new one.
type Hold struct {
	Name string `json:"name"`
	// Kind is what is held:
	//   - http: a keep-alive HTTP/1.1 connection (GET /);
	//   - redis-subscribe: a redis client subscribed to channel "lab"; the
	//     check publishes on a new connection and the held one receives it;
	//   - postgres-transaction: psql (the host's) with a transaction open
	//     (an INSERT into lab_tx), committed by the check;
	//   - ssh-shell: ssh (the host's) with a shell that set a variable; the
	//     check prints it from the same shell.
	Kind string `json:"kind"`
	// Port is the guest's TCP port, forwarded from 127.0.0.1.
	Port int `json:"port"`
}

var holdKinds = map[string]bool{"http": true, "redis-subscribe": true, "postgres-transaction": true, "ssh-shell": true}

// held is an open Hold.
type held interface {
	// check uses the connection again and describes it, or says why it
	// is not the same connection any more.
	check(ctx context.Context) (string, error)
	close()
}

// holdsStart opens every hold of the scenario.
func (r *runner) holdsStart(ctx context.Context) error {
	for _, h := range r.sc.Holds {
		addr := fmt.Sprintf("127.0.0.1:%d", r.g.VM.HostPort(h.Name))
		var c held
		var desc string
		var err error
		switch h.Kind {
		case "http":
			c, desc, err = holdHTTP(ctx, addr)
		case "redis-subscribe":
			c, desc, err = holdRedis(ctx, addr)
		case "postgres-transaction":
			c, desc, err = holdPostgres(ctx, addr)
		case "ssh-shell":
			c, desc, err = r.holdSSH(ctx, addr)
		}
		if err != nil {
			return fmt.Errorf("hold %s: %w", h.Name, err)
		}
		r.holds = append(r.holds, c)
		r.rep.Saved["hold "+h.Name+" before"] = desc
		logf(r.out, "host holds %s: %s", h.Name, desc)
	}
	return nil
}

// holdsCheck uses every held connection again; all must have survived.
func (r *runner) holdsCheck(ctx context.Context) error {
	var failed []string
	for i, h := range r.sc.Holds {
		if i >= len(r.holds) {
			break
		}
		desc, err := r.holds[i].check(ctx)
		if err != nil {
			desc = "LOST: " + err.Error()
			failed = append(failed, h.Name)
		}
		r.rep.Saved["hold "+h.Name+" after"] = desc
		logf(r.out, "host held %s: %s", h.Name, desc)
	}
	for _, c := range r.holds {
		c.close()
	}
	r.holds = nil
	if len(failed) > 0 {
		return fmt.Errorf("connections not carried over: %s", strings.Join(failed, ", "))
	}
	return nil
}

// dialRetry connects to addr until it answers or ctx ends.
func dialRetry(ctx context.Context, addr string) (net.Conn, error) {
	for {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s does not answer: %w", addr, err)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// deadlineOr sets c's deadline to ctx's, or d from now.
func deadlineOr(ctx context.Context, c net.Conn, d time.Duration) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
		return
	}
	c.SetDeadline(time.Now().Add(d))
}

// ---- http

type httpHold struct {
	c     net.Conn
	r     *bufio.Reader
	local string
}

func holdHTTP(ctx context.Context, addr string) (held, string, error) {
	c, err := dialRetry(ctx, addr)
	if err != nil {
		return nil, "", err
	}
	h := &httpHold{c: c, r: bufio.NewReader(c), local: c.LocalAddr().String()}
	status, err := h.get(ctx)
	if err != nil {
		c.Close()
		return nil, "", err
	}
	return h, fmt.Sprintf("keep-alive connection %s, GET / answered %d", h.local, status), nil
}

func (h *httpHold) get(ctx context.Context) (int, error) {
	deadlineOr(ctx, h.c, 2*time.Minute)
	if _, err := io.WriteString(h.c, "GET / HTTP/1.1\r\nHost: lab\r\nUser-Agent: seamless-lab\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(h.r, nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		return resp.StatusCode, errors.New("the server closes the connection after the answer")
	}
	return resp.StatusCode, nil
}

func (h *httpHold) check(ctx context.Context) (string, error) {
	status, err := h.get(ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("same connection %s, GET / answered %d", h.local, status), nil
}

func (h *httpHold) close() { h.c.Close() }

// ---- redis

type redisHold struct {
	addr  string
	c     net.Conn
	r     *bufio.Reader
	local string
}

// respArray reads one RESP array of bulk strings.
func respArray(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("redis answered %q", line)
	}
	n, _ := strconv.Atoi(line[1:])
	var out []string
	for i := 0; i < n; i++ {
		l, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l = strings.TrimRight(l, "\r\n")
		switch {
		case strings.HasPrefix(l, "$"):
			size, _ := strconv.Atoi(l[1:])
			b := make([]byte, size+2)
			if _, err := io.ReadFull(r, b); err != nil {
				return nil, err
			}
			out = append(out, string(b[:size]))
		default:
			out = append(out, strings.TrimPrefix(strings.TrimPrefix(l, ":"), "+"))
		}
	}
	return out, nil
}

func respCommand(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

func holdRedis(ctx context.Context, addr string) (held, string, error) {
	c, err := dialRetry(ctx, addr)
	if err != nil {
		return nil, "", err
	}
	h := &redisHold{addr: addr, c: c, r: bufio.NewReader(c), local: c.LocalAddr().String()}
	deadlineOr(ctx, c, time.Minute)
	io.WriteString(c, respCommand("SUBSCRIBE", "lab"))
	got, err := respArray(h.r)
	if err != nil || len(got) < 2 || got[0] != "subscribe" {
		c.Close()
		return nil, "", fmt.Errorf("SUBSCRIBE lab: %q, %v", got, err)
	}
	return h, fmt.Sprintf("connection %s subscribed to channel lab", h.local), nil
}

func (h *redisHold) check(ctx context.Context) (string, error) {
	p, err := dialRetry(ctx, h.addr)
	if err != nil {
		return "", err
	}
	defer p.Close()
	deadlineOr(ctx, p, time.Minute)
	io.WriteString(p, respCommand("PUBLISH", "lab", "after the update"))
	n, err := bufio.NewReader(p).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("PUBLISH: %w", err)
	}
	deadlineOr(ctx, h.c, time.Minute)
	got, err := respArray(h.r)
	if err != nil || len(got) != 3 || got[0] != "message" || got[2] != "after the update" {
		return "", fmt.Errorf("the subscriber received %q, %v", got, err)
	}
	return fmt.Sprintf("same connection %s received the message (PUBLISH reached %s subscriber)", h.local, strings.TrimSpace(strings.TrimPrefix(n, ":"))), nil
}

func (h *redisHold) close() { h.c.Close() }

// ---- postgres (the host's psql)

type lineProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func startLines(name string, args ...string) (*lineProc, error) {
	p := &lineProc{cmd: exec.Command(name, args...), done: make(chan struct{})}
	var err error
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, strings.TrimRight(sc.Text(), "\r"))
			p.mu.Unlock()
		}
	}()
	return p, nil
}

// wait waits for a line holding prefix (after the from-th line) and
// returns it from prefix on: a shell on a terminal may put escape
// sequences (bracketed paste) before what it prints.
func (p *lineProc) wait(ctx context.Context, prefix string, from int) (string, int, error) {
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if k := strings.Index(p.lines[i], prefix); k >= 0 {
				l := p.lines[i][k:]
				p.mu.Unlock()
				return l, i + 1, nil
			}
		}
		all := strings.Join(p.lines, "\n")
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", 0, fmt.Errorf("no %q line: %s", prefix, lastLines(all, 10))
		case <-p.done:
			return "", 0, fmt.Errorf("the program ended without a %q line: %s", prefix, lastLines(all, 10))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *lineProc) close() {
	p.in.Close()
	if p.cmd.Process != nil {
		p.cmd.Process.Kill()
	}
	p.cmd.Wait()
}

type pgHold struct {
	p       *lineProc
	next    int
	backend string
}

func holdPostgres(ctx context.Context, addr string) (held, string, error) {
	host, port, _ := net.SplitHostPort(addr)
	if _, err := exec.LookPath("psql"); err != nil {
		return nil, "", errors.New("the host has no psql (apt-get install postgresql-client)")
	}
	if c, err := dialRetry(ctx, addr); err == nil {
		c.Close()
	} else {
		return nil, "", err
	}
	p, err := startLines("psql", "-h", host, "-p", port, "-U", "lab", "-d", "lab", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1")
	if err != nil {
		return nil, "", err
	}
	io.WriteString(p.in, "BEGIN; INSERT INTO lab_tx VALUES (42); SELECT 'held|' || pg_backend_pid() || '|' || (SELECT count(*) FROM lab_tx WHERE x = 42);\n")
	line, next, err := p.wait(ctx, "held|", 0)
	if err != nil {
		p.close()
		return nil, "", err
	}
	f := strings.Split(line, "|")
	h := &pgHold{p: p, next: next, backend: f[1]}
	return h, fmt.Sprintf("psql session, backend %s, transaction open (its row visible to it: %s)", f[1], f[2]), nil
}

func (h *pgHold) check(ctx context.Context) (string, error) {
	io.WriteString(h.p.in, "SELECT 'before-commit|' || pg_backend_pid() || '|' || (SELECT count(*) FROM lab_tx WHERE x = 42); COMMIT; SELECT 'committed|' || (SELECT count(*) FROM lab_tx WHERE x = 42);\n")
	line, next, err := h.p.wait(ctx, "before-commit|", h.next)
	if err != nil {
		return "", err
	}
	f := strings.Split(line, "|")
	if f[1] != h.backend {
		return "", fmt.Errorf("backend %s, was %s: a new session", f[1], h.backend)
	}
	line, _, err = h.p.wait(ctx, "committed|", next)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("same session (backend %s), the transaction committed after the update: %s row", f[1], strings.TrimPrefix(line, "committed|")), nil
}

func (h *pgHold) close() { h.p.close() }

// ---- ssh (the host's ssh client)

type sshHold struct {
	p     *lineProc
	next  int
	shell string
}

// holdSSH logs in as root with a key made for this run (its public half
// installed through the guest agent) and leaves a shell with a variable.
func (r *runner) holdSSH(ctx context.Context, addr string) (held, string, error) {
	for _, c := range []string{"ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(c); err != nil {
			return nil, "", fmt.Errorf("the host has no %s (apt-get install openssh-client)", c)
		}
	}
	key := filepath.Join(r.rep.RunDir, "ssh-key")
	os.Remove(key)
	os.Remove(key + ".pub")
	if b, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "seamless-lab", "-f", key).CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("ssh-keygen: %v: %s", err, b)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return nil, "", err
	}
	if _, err := r.g.Output(ctx, "mkdir -p -m 700 /root/.ssh && echo '"+strings.TrimSpace(string(pub))+"' >> /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys", time.Minute); err != nil {
		return nil, "", fmt.Errorf("install the key: %w", err)
	}
	host, port, _ := net.SplitHostPort(addr)
	if c, err := dialRetry(ctx, addr); err == nil {
		c.Close()
	} else {
		return nil, "", err
	}
	p, err := startLines("ssh", "-tt", "-i", key, "-p", port, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ServerAliveInterval=0", "-o", "LogLevel=ERROR", "root@"+host, "/bin/bash --norc --noprofile -i")
	if err != nil {
		return nil, "", err
	}
	// $((1+1)) keeps the typed command's echo from matching.
	io.WriteString(p.in, "stty -echo; export LABVAR=kept-$$; echo \"SHELL$((1+1)) $$ $LABVAR\"\n")
	line, next, err := p.wait(ctx, "SHELL2 ", 0)
	if err != nil {
		p.close()
		return nil, "", err
	}
	f := strings.Fields(line)
	if len(f) != 3 {
		p.close()
		return nil, "", fmt.Errorf("the shell said %q", line)
	}
	return &sshHold{p: p, next: next, shell: f[1]}, fmt.Sprintf("ssh session, shell pid %s, LABVAR=%s", f[1], f[2]), nil
}

func (h *sshHold) check(ctx context.Context) (string, error) {
	io.WriteString(h.p.in, "echo \"AFTER$((2+1)) $$ $LABVAR\"\n")
	line, _, err := h.p.wait(ctx, "AFTER3 ", h.next)
	if err != nil {
		return "", err
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[1] != h.shell || f[2] != "kept-"+h.shell {
		return "", fmt.Errorf("the shell said %q, want shell %s with LABVAR=kept-%s", line, h.shell, h.shell)
	}
	return fmt.Sprintf("same ssh session, shell pid %s, LABVAR=%s", f[1], f[2]), nil
}

func (h *sshHold) close() { h.p.close() }
