package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"
)

// ClockSample ties a boot's kernel clock (the timestamps of its serial
// console lines) to the host's: the kernel printed a marker at KernelS, and
// the host saw it in serial.log at Host, at most WithinMS later.
type ClockSample struct {
	Host     time.Time `json:"host"`
	KernelS  float64   `json:"kernel_s"`
	WithinMS int64     `json:"within_ms"`
}

// HostAt is the host time of kernel timestamp s of the same boot.
func (c *ClockSample) HostAt(s float64) time.Time {
	return c.Host.Add(time.Duration((s - c.KernelS) * float64(time.Second)))
}

// clockPoll is how often the serial log is read while waiting for a marker.
const clockPoll = 5 * time.Millisecond

// SampleClock writes a marker to the guest's kernel log and watches the
// serial console for it: the line carries the kernel's timestamp, and the
// host's clock says when it arrived. The console is written synchronously
// by printk, so the two are within a poll interval of each other, whatever
// the guest agent's latency.
func (g *Guest) SampleClock(ctx context.Context) (*ClockSample, error) {
	var tok [6]byte
	_, _ = rand.Read(tok[:])
	marker := "seamless-lab clock " + hex.EncodeToString(tok[:])
	from := fileSize(g.VM.SerialLog)
	done := make(chan error, 1)
	go func() {
		_, err := g.Output(ctx, fmt.Sprintf("echo '<5>%s' > /dev/kmsg", marker), 20*time.Second)
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	var cmdErr error
	for time.Now().Before(deadline) {
		seen := time.Now()
		if line := findFrom(g.VM.SerialLog, from, marker); line != "" {
			ts, _, ok := kernelLine(line)
			if !ok {
				return nil, fmt.Errorf("clock marker without a timestamp: %q", line)
			}
			return &ClockSample{Host: seen, KernelS: ts, WithinMS: clockPoll.Milliseconds()}, nil
		}
		select {
		case cmdErr = <-done:
			if cmdErr != nil {
				return nil, fmt.Errorf("clock marker: %w", cmdErr)
			}
			done = nil // the command is done; the line may still be on its way
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(clockPoll):
		}
	}
	return nil, fmt.Errorf("clock marker %q did not reach the serial console", marker)
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// findFrom returns the first complete line of the file after offset from
// that contains s.
func findFrom(path string, from int64, s string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, from, 1<<40))
	if err != nil {
		return ""
	}
	i := bytes.Index(b, []byte(s))
	if i < 0 {
		return ""
	}
	start := bytes.LastIndexByte(b[:i], '\n') + 1
	end := bytes.IndexByte(b[i:], '\n')
	if end < 0 {
		return ""
	}
	return string(b[start : i+end])
}
