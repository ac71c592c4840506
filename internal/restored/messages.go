package restored

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/seamless-linux/seamless/internal/contract"
)

// The messages the daemon exchanges with the processes around it, each a
// JSON object: with an anchor over the daemon's socket (Request, Reply),
// with stage 1 over the readiness pipe (Readiness), and with the restorer
// it runs for each tree (RestorerReport on the restorer's stdout).

// Request is what an anchor asks the daemon, with its standard output and
// error (the unit's journal stream) passed along as SCM_RIGHTS.
type Request struct {
	Unit string `json:"unit"`
	// Ping asks only whether the daemon answers (see Settle): nothing is
	// restored, and the reply says Alive.
	Ping bool `json:"ping,omitempty"`
}

// Reply is the daemon's answer: the main PID of the restored unit, or why
// it could not be restored (the anchor then starts the unit cold).
type Reply struct {
	MainPID int    `json:"main_pid,omitempty"`
	Error   string `json:"error,omitempty"`
	// Alive answers a Ping.
	Alive bool `json:"alive,omitempty"`
}

// Readiness is the one line the daemon writes on its readiness pipe (fd 3)
// once every PID is reserved, or the image refused: stage 1 waits for it.
type Readiness struct {
	// Summary says what each unit waits for, or why it starts cold.
	Summary string `json:"summary,omitempty"`
	// Error is why the whole image was refused: every unit starts cold.
	Error string `json:"error,omitempty"`
}

// String is the readiness as a person reads it.
func (r Readiness) String() string {
	if r.Error != "" {
		return "error: " + r.Error
	}
	return "ok: " + r.Summary
}

// WriteMessage writes v as one line of JSON.
func WriteMessage(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ParseReadiness reads the daemon's readiness line.
func ParseReadiness(line string) (Readiness, error) {
	var r Readiness
	if err := json.Unmarshal([]byte(strings.TrimSpace(line)), &r); err != nil {
		return r, fmt.Errorf("the restore daemon's readiness %q: %w", Bound(line), err)
	}
	return r, nil
}

// RestorerReport is what `seamless restore --json` prints on its standard
// output: the restored root PID and the restore's warnings, or why it
// failed. Its standard error stays a log for people.
type RestorerReport struct {
	Root     int              `json:"root,omitempty"`
	Warnings []string         `json:"warnings,omitempty"`
	Error    string           `json:"error,omitempty"`
	Phases   []contract.Phase `json:"phases,omitempty"`
	// CopiedBytes and WrittenBytes are the private memory filled through
	// a userfaultfd and written with process_vm_writev.
	CopiedBytes  uint64 `json:"copied_bytes,omitempty"`
	WrittenBytes uint64 `json:"written_bytes,omitempty"`
}
