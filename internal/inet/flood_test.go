package inet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// flood opens connections to addr from namespace B as fast as it can, on
// workers goroutines, until stop: each reads the server's answer to its
// end. It counts connections served and errors by kind.
type flood struct {
	served atomic.Int64
	last   atomic.Int64 // the highest "served N" seen
	mu     sync.Mutex
	errs   map[string]int
	stop   chan struct{}
	once   sync.Once
	done   sync.WaitGroup
}

func startFlood(t *testing.T, l *lab, addr string, workers int) *flood {
	t.Helper()
	f := &flood{errs: map[string]int{}, stop: make(chan struct{})}
	for i := 0; i < workers; i++ {
		f.done.Add(1)
		go func() {
			defer f.done.Done()
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			ns, err := os.Open("/run/netns/" + l.b)
			if err == nil {
				err = unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET)
				ns.Close()
			}
			if err != nil {
				f.fail(err)
				return
			}
			// A client whose SYNs are dropped retries them (1 s, 3 s,
			// 7 s...): the dial timeout covers the checkpoint's gap.
			d := net.Dialer{Timeout: 30 * time.Second}
			buf := make([]byte, 64)
			for {
				select {
				case <-f.stop:
					return
				default:
				}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					f.fail(err)
					continue
				}
				c.SetDeadline(time.Now().Add(30 * time.Second))
				n, err := io.ReadFull(c, buf[:7])
				if err == nil {
					var m int
					m, err = c.Read(buf[n:])
					n += m
				}
				c.Close()
				line := string(buf[:n])
				v, perr := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "served ")), 10, 64)
				if err != nil && !errors.Is(err, io.EOF) || perr != nil {
					f.fail(fmt.Errorf("answer %q: %v %v", line, err, perr))
					continue
				}
				f.served.Add(1)
				for {
					old := f.last.Load()
					if v <= old || f.last.CompareAndSwap(old, v) {
						break
					}
				}
			}
		}()
	}
	return f
}

func (f *flood) fail(err error) {
	kind := err.Error()
	switch {
	case errors.Is(err, unix.ECONNREFUSED):
		kind = "connection refused"
	case errors.Is(err, unix.ECONNRESET):
		kind = "connection reset"
	case errors.Is(err, os.ErrDeadlineExceeded):
		kind = "timeout"
	}
	f.mu.Lock()
	f.errs[kind]++
	f.mu.Unlock()
}

func (f *flood) end() {
	f.once.Do(func() { close(f.stop) })
	f.done.Wait()
}

func (f *flood) errors() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k, n := range f.errs {
		out = append(out, fmt.Sprintf("%d× %s", n, k))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// TestListenerUnderFlood checkpoints a server while a client opens new
// connections to it as fast as it can (thousands a second): before, every
// checkpoint found connections in the listener's accept queue and was
// refused. The door of the listener closes first (its SYNs are dropped),
// the server accepts what is queued, then it is checkpointed: five times
// with --leave-running, then once for real, restored in its namespace;
// the flood goes on against the restored server, whose count of served
// connections went on from where it was, and no client sees its
// connection refused or reset.
func TestListenerUnderFlood(t *testing.T) {
	needRoot(t)
	l := newLab(t)
	cmd := l.start(t, "acceptor", "8080")
	addr := l.addr(4, 8080)
	f := startFlood(t, l, addr, 32)
	defer f.end()
	// Under load (other tests, a lab guest on the same CPUs) the flood may
	// take a while to get going: wait for it rather than for a time.
	start := time.Now()
	waitUntil(t, "the flood to serve 2000 connections", func() bool { return f.served.Load() >= 2000 || f.errors() != "" })
	if e := f.errors(); e != "" {
		t.Fatalf("clients saw errors before any checkpoint: %s", e)
	}
	before := f.served.Load()
	t.Logf("flood: %d connections served in %v", before, time.Since(start).Round(time.Millisecond))
	pid := strconv.Itoa(cmd.Process.Pid)
	for i := 0; i < 5; i++ {
		img := fmt.Sprintf("%s/img-leave-%d", l.dir, i)
		start := time.Now()
		stdout, stderr, took, err := seamlessRun("", "checkpoint", "--pid", pid, "--dir", img, "--leave-running")
		if err != nil {
			t.Fatalf("checkpoint %d under the flood (--leave-running): %v after %v\n%s%s", i+1, err, took, stdout, stderr)
		}
		t.Logf("checkpoint %d under the flood: %v; %s", i+1, time.Since(start).Round(time.Millisecond), strings.TrimSpace(stderr))
		os.RemoveAll(img)
	}
	noLock(t, l, "after the checkpoints that let the server run")
	mid := f.served.Load()
	img := l.checkpoint(t, cmd.Process.Pid)
	cmd.Wait()
	lastBefore := f.last.Load()
	time.Sleep(time.Second)
	l.restore(t, img)
	noLock(t, l, "after the restore")
	waitUntil(t, "the flood served by the restored server", func() bool { return f.last.Load() > lastBefore+1000 })
	f.end()
	t.Logf("served %d connections before the checkpoints, %d during them, %d in all; the last answer before the checkpoint was number %d, the last after the restore %d",
		before, mid-before, f.served.Load(), lastBefore, f.last.Load())
	if e := f.errors(); e != "" {
		t.Fatalf("clients saw errors: %s", e)
	}
}

// waitUntil polls cond every 20 ms for at most progTimeout.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(progTimeout)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
