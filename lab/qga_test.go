package lab

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeAgent serves a minimal qemu-guest-agent on a unix socket. It first
// sends garbage and a stale answer, as a guest restarting mid-stream would.
func fakeAgent(t *testing.T, path string) {
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("{\"return\": {}, \"id\": 1}\ngarbage"))
		rd := bufio.NewReader(c)
		for {
			line, err := rd.ReadBytes('\n')
			if err != nil {
				return
			}
			for len(line) > 0 && line[0] == 0xff {
				line = line[1:]
			}
			var req struct {
				Execute   string          `json:"execute"`
				Arguments json.RawMessage `json:"arguments"`
				ID        json.RawMessage `json:"id"`
			}
			if json.Unmarshal(line, &req) != nil {
				continue
			}
			switch req.Execute {
			case "guest-sync-delimited":
				var a struct{ ID int64 }
				json.Unmarshal(req.Arguments, &a)
				b, _ := json.Marshal(map[string]any{"return": a.ID})
				c.Write(append(append([]byte{0xff}, b...), '\n'))
			case "guest-exec":
				c.Write([]byte(`{"return": {"pid": 42}, "id": 999999999999}` + "\n")) // stale
				b, _ := json.Marshal(map[string]any{"return": map[string]any{"pid": 42}, "id": req.ID})
				c.Write(append(b, '\n'))
			case "guest-exec-status":
				out := base64.StdEncoding.EncodeToString([]byte("hello\n"))
				b, _ := json.Marshal(map[string]any{"return": map[string]any{"exited": true, "exitcode": 3, "out-data": out}, "id": req.ID})
				c.Write(append(b, '\n'))
			case "guest-ping":
				b, _ := json.Marshal(map[string]any{"return": map[string]any{}, "id": req.ID})
				c.Write(append(b, '\n'))
			}
		}
	}()
}

func TestAgentExec(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qga.sock")
	fakeAgent(t, path)
	a := NewAgent(path)
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := a.Exec(ctx, []string{"/bin/sh", "-c", "echo hello; exit 3"}, guestEnv)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || res.Stdout != "hello\n" {
		t.Errorf("result = %+v", res)
	}
}

func TestAgentNoSocket(t *testing.T) {
	a := NewAgent(filepath.Join(t.TempDir(), "missing.sock"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := a.Ping(ctx); err == nil {
		t.Fatal("ping without a socket succeeded")
	}
}

func TestTailFileStripsEscapes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "serial.log")
	data := "one\r\n\x1b[0;32m  OK  \x1b[0m] Started x\r\n\x1b[Kthree\n"
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := tailFile(p, 2), "  OK  ] Started x\nthree"; got != want {
		t.Errorf("tail = %q, want %q", got, want)
	}
}

func TestFailCarriesSerialOnce(t *testing.T) {
	p := filepath.Join(t.TempDir(), "serial.log")
	os.WriteFile(p, []byte("kernel panic\n"), 0o600)
	g := &Guest{VM: &VM{SerialLog: p}}
	err := g.Fail("outer", g.Fail("inner", errors.New("boom")))
	if n := strings.Count(err.Error(), "kernel panic"); n != 1 {
		t.Errorf("serial tail appears %d times:\n%v", n, err)
	}
	if !strings.HasPrefix(err.Error(), "outer: inner: boom") {
		t.Errorf("error = %v", err)
	}
}
