package anchor

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/seamless-linux/seamless/internal/units"
)

// ColdStart starts the service as its unit would have. The anchor's unit is
// Type=notify: for a simple service it announces readiness and becomes the
// service; a notify service is exec'd and announces itself; a forking one
// runs to its fork and its PID file names the main process.
func ColdStart(st units.Start, log io.Writer) error {
	if st.Path == "" || len(st.Argv) == 0 {
		return fmt.Errorf("no ExecStart= recorded for a cold start")
	}
	switch st.Type {
	case "notify", "notify-reload":
		return syscall.Exec(st.Path, st.Argv, os.Environ())
	case "forking":
		return forking(st)
	case "oneshot":
		return fmt.Errorf("services of Type=oneshot are not carried")
	}
	if err := notify("READY=1\nSTATUS=started cold"); err != nil {
		return err
	}
	env := os.Environ()
	for i := 0; i < len(env); i++ {
		if strings.HasPrefix(env[i], "NOTIFY_SOCKET=") {
			env = append(env[:i], env[i+1:]...)
			i--
		}
	}
	return syscall.Exec(st.Path, st.Argv, env)
}

func forking(st units.Start) error {
	if st.PIDFile == "" {
		return fmt.Errorf("a Type=forking service without PIDFile= cannot be started cold by seamless")
	}
	cmd := &exec.Cmd{Path: st.Path, Args: st.Argv, Stdout: os.Stdout, Stderr: os.Stderr}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", st.Path, err)
	}
	b, err := os.ReadFile(st.PIDFile)
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("%s: %w", st.PIDFile, err)
	}
	return notify(fmt.Sprintf("MAINPID=%d\nREADY=1\nSTATUS=started cold", pid))
}
