package lab

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Agent talks to qemu-guest-agent in the guest over QEMU's virtio-serial
// chardev socket. The guest side of that channel goes away on every reboot or
// kexec while the host side stays connected, so every exchange starts with
// guest-sync-delimited and responses are matched by id: a stale answer can
// never be taken for the current one.
type Agent struct {
	path string

	mu     sync.Mutex
	conn   net.Conn
	rd     *bufio.Reader
	nextID int64
	synced bool
}

// NewAgent returns an agent client for the chardev socket at path. It does not
// connect until the first call.
func NewAgent(path string) *Agent {
	return &Agent{path: path, nextID: time.Now().UnixNano() % 1e9}
}

// Close drops the connection to the socket.
func (a *Agent) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dropLocked()
}

func (a *Agent) dropLocked() error {
	a.synced = false
	if a.conn == nil {
		return nil
	}
	err := a.conn.Close()
	a.conn, a.rd = nil, nil
	return err
}

func (a *Agent) dialLocked() error {
	if a.conn != nil {
		return nil
	}
	c, err := net.DialTimeout("unix", a.path, 2*time.Second)
	if err != nil {
		return fmt.Errorf("connect to guest agent socket %s: %w", a.path, err)
	}
	a.conn, a.rd = c, bufio.NewReader(c)
	return nil
}

// response is one QGA reply.
type response struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	ID json.RawMessage `json:"id"`
}

// syncLocked resynchronises the stream: 0xFF resets the agent's parser, and
// the answer to guest-sync-delimited is preceded by 0xFF, which lets us skip
// whatever was left in the channel.
func (a *Agent) syncLocked(timeout time.Duration) error {
	if err := a.dialLocked(); err != nil {
		return err
	}
	a.nextID++
	id := a.nextID
	deadline := time.Now().Add(timeout)
	_ = a.conn.SetDeadline(deadline)
	req := fmt.Sprintf("\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":%d}}\n", id)
	if _, err := a.conn.Write([]byte(req)); err != nil {
		_ = a.dropLocked()
		return fmt.Errorf("guest agent sync write: %w", err)
	}
	for {
		if _, err := a.rd.ReadBytes(0xff); err != nil {
			return fmt.Errorf("guest agent sync: %w", err)
		}
		line, err := a.rd.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("guest agent sync: %w", err)
		}
		var r response
		if json.Unmarshal(line, &r) != nil {
			continue
		}
		var got int64
		if json.Unmarshal(r.Return, &got) == nil && got == id {
			a.synced = true
			return nil
		}
	}
}

// call sends one command and waits for its answer, decoding "return" into out.
func (a *Agent) call(ctx context.Context, cmd string, args any, out any) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return fmt.Errorf("guest agent %s: %w", cmd, context.DeadlineExceeded)
	}
	if !a.synced {
		if err := a.syncLocked(timeout); err != nil {
			return err
		}
	}
	a.nextID++
	id := a.nextID
	req := map[string]any{"execute": cmd, "id": id}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode %s: %w", cmd, err)
	}
	_ = a.conn.SetDeadline(time.Now().Add(timeout))
	if _, err := a.conn.Write(append(b, '\n')); err != nil {
		_ = a.dropLocked()
		return fmt.Errorf("guest agent %s: %w", cmd, err)
	}
	for {
		line, err := a.rd.ReadBytes('\n')
		if err != nil {
			a.synced = false
			return fmt.Errorf("guest agent %s: %w", cmd, err)
		}
		var r response
		if json.Unmarshal(trimFF(line), &r) != nil {
			continue
		}
		var got int64
		if json.Unmarshal(r.ID, &got) != nil || got != id {
			continue // an answer to an older request
		}
		if r.Error != nil {
			return fmt.Errorf("guest agent %s: %s: %s", cmd, r.Error.Class, r.Error.Desc)
		}
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(r.Return, out); err != nil {
			return fmt.Errorf("decode %s answer: %w", cmd, err)
		}
		return nil
	}
}

func trimFF(b []byte) []byte {
	for len(b) > 0 && b[0] == 0xff {
		b = b[1:]
	}
	return b
}

// Ping succeeds when the guest agent answers.
func (a *Agent) Ping(ctx context.Context) error {
	a.mu.Lock()
	a.synced = false
	a.mu.Unlock()
	return a.call(ctx, "guest-ping", nil, nil)
}

// ExecResult is the outcome of a command run in the guest.
type ExecResult struct {
	ExitCode int
	Signal   int
	Stdout   string
	Stderr   string
}

// Start launches argv in the guest with env ("K=V") and returns its guest PID.
func (a *Agent) Start(ctx context.Context, argv []string, env []string) (int, error) {
	if len(argv) == 0 {
		return 0, errors.New("guest exec: empty command")
	}
	var out struct {
		PID int `json:"pid"`
	}
	args := map[string]any{"path": argv[0], "arg": argv[1:], "capture-output": true}
	if env != nil {
		args["env"] = env
	}
	if err := a.call(ctx, "guest-exec", args, &out); err != nil {
		return 0, err
	}
	return out.PID, nil
}

// Status reports whether the guest process pid has exited, and its result.
func (a *Agent) Status(ctx context.Context, pid int) (bool, ExecResult, error) {
	var st struct {
		Exited   bool   `json:"exited"`
		ExitCode int    `json:"exitcode"`
		Signal   int    `json:"signal"`
		Out      string `json:"out-data"`
		Err      string `json:"err-data"`
	}
	if err := a.call(ctx, "guest-exec-status", map[string]any{"pid": pid}, &st); err != nil {
		return false, ExecResult{}, err
	}
	if !st.Exited {
		return false, ExecResult{}, nil
	}
	stdout, err := base64.StdEncoding.DecodeString(st.Out)
	if err != nil {
		return true, ExecResult{}, fmt.Errorf("decode guest stdout: %w", err)
	}
	stderr, err := base64.StdEncoding.DecodeString(st.Err)
	if err != nil {
		return true, ExecResult{}, fmt.Errorf("decode guest stderr: %w", err)
	}
	return true, ExecResult{ExitCode: st.ExitCode, Signal: st.Signal, Stdout: string(stdout), Stderr: string(stderr)}, nil
}

// Exec runs argv in the guest and waits for it to finish or for ctx to end.
func (a *Agent) Exec(ctx context.Context, argv []string, env []string) (ExecResult, error) {
	pid, err := a.Start(ctx, argv, env)
	if err != nil {
		return ExecResult{}, err
	}
	wait := 20 * time.Millisecond
	for {
		done, res, err := a.Status(ctx, pid)
		if err != nil {
			return ExecResult{}, err
		}
		if done {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return ExecResult{}, fmt.Errorf("guest command %q (pid %d): %w", argv, pid, ctx.Err())
		case <-time.After(wait):
		}
		if wait < 500*time.Millisecond {
			wait *= 2
		}
	}
}
