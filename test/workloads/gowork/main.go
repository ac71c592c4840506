// Command gowork is the Go runtime workload of the round-trip suite: it
// speaks the same protocol as the C workloads (see ../README.md).
//
// It keeps the Go runtime busy with what real Go services use: a ring of
// goroutines passing a token over channels (each hop adds one, so a lost or
// repeated message is seen), a time.Ticker that drives the TICK lines, a
// chain of time.AfterFunc timers, sleeping goroutines, a map whose
// checksum is kept incrementally and recomputed every tick, steady garbage
// with a forced runtime.GC every 25 ticks, a goroutine locked to its OS
// thread that checks its TID, and signal.Notify for SIGUSR1 (counted in
// usr1=). Every tick it checks the PID, that every OS thread present at
// READY still exists (/proc/self/task), the map, the ring and the
// counters; at the stop request it also checks that the ring, the timers,
// the sleepers and the GC still make progress.
package main

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	ringSize  = 100
	mapSize   = 10000
	sleepers  = 50
	gcEvery   = 25
	deadline  = 20 * time.Second
	tickEvery = 20 * time.Millisecond
)

var (
	pid      = syscall.Getpid()
	nonce    uint64
	stopFile string
	usr1     atomic.Int64
	timerHit atomic.Int64
	sleeps   atomic.Int64
	outMu    sync.Mutex
)

// say writes one line to stdout with a single write.
func say(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n")
}

// fail reports a mismatch and exits 1.
func fail(format string, args ...any) {
	say("FAIL [gowork pid %d] %s", syscall.Getpid(), fmt.Sprintf(format, args...))
	os.Exit(1)
}

func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// ring passes a token through ringSize goroutines; each adds one.
type ring struct {
	head chan uint64
	tail chan uint64
	laps atomic.Uint64
}

func newRing() *ring {
	r := &ring{head: make(chan uint64, 1)}
	in := r.head
	for i := 0; i < ringSize; i++ {
		out := make(chan uint64, 1)
		go func(in <-chan uint64, out chan<- uint64) {
			for v := range in {
				out <- v + 1
			}
		}(in, out)
		in = out
	}
	r.tail = in
	go func() {
		var want uint64
		r.head <- 0
		for v := range r.tail {
			want += ringSize
			if v != want {
				fail("goroutine ring: token %d, want %d", v, want)
			}
			r.laps.Add(1)
			time.Sleep(time.Millisecond) // keep the CPU for the rest of the machine
			r.head <- v
		}
	}()
	return r
}

// checkedMap is a map with an incrementally maintained checksum.
type checkedMap struct {
	m   map[int]string
	sum uint64
}

func entrySum(k int, v string) uint64 {
	h := mix(uint64(k) ^ nonce)
	for i := 0; i < len(v); i++ {
		h = mix(h ^ uint64(v[i]))
	}
	return h
}

func (c *checkedMap) set(k int, v string) {
	if old, ok := c.m[k]; ok {
		c.sum -= entrySum(k, old)
	}
	c.m[k] = v
	c.sum += entrySum(k, v)
}

func (c *checkedMap) verify() {
	var s uint64
	for k, v := range c.m {
		s += entrySum(k, v)
	}
	if s != c.sum || len(c.m) != mapSize {
		fail("map checksum %x (len %d), want %x (len %d)", s, len(c.m), c.sum, mapSize)
	}
}

// threadIDs lists /proc/self/task.
func threadIDs() []int {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		fail("read /proc/self/task: %v", err)
	}
	var ids []int
	for _, e := range ents {
		if id, err := strconv.Atoi(e.Name()); err == nil {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	return ids
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// lockedThread runs on one locked OS thread and checks its TID stays.
func lockedThread(ready chan<- int, beats *atomic.Int64) {
	runtime.LockOSThread()
	tid := syscall.Gettid()
	ready <- tid
	for {
		time.Sleep(15 * time.Millisecond)
		if now := syscall.Gettid(); now != tid {
			fail("locked goroutine's thread id is %d, was %d", now, tid)
		}
		beats.Add(1)
	}
}

func startTimers() {
	var next func()
	next = func() {
		timerHit.Add(1)
		time.AfterFunc(7*time.Millisecond, next)
	}
	time.AfterFunc(7*time.Millisecond, next)
	for i := 0; i < sleepers; i++ {
		go func(i int) {
			for {
				time.Sleep(time.Duration(10+i%40) * time.Millisecond)
				sleeps.Add(1)
			}
		}(i)
	}
}

// waitFor waits (bounded) for cond, failing with what otherwise.
func waitFor(what string, cond func() bool) {
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			fail("%s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gowork STOPFILE")
		os.Exit(2)
	}
	stopFile = os.Args[1]
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		fail("random: %v", err)
	}
	nonce = binary.LittleEndian.Uint64(b[:])

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGUSR1)
	go func() {
		for range sigs {
			usr1.Add(1)
		}
	}()

	r := newRing()
	cm := &checkedMap{m: make(map[int]string)}
	for i := 0; i < mapSize; i++ {
		cm.set(i, strconv.FormatUint(mix(nonce^uint64(i)), 36))
	}
	var beats atomic.Int64
	tidCh := make(chan int)
	go lockedThread(tidCh, &beats)
	lockedTID := <-tidCh
	startTimers()

	// Make the runtime start its threads (up to GOMAXPROCS running at once).
	var wg sync.WaitGroup
	for i := 0; i < runtime.GOMAXPROCS(0)*2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := uint64(i)
			for j := 0; j < 2000000; j++ {
				x = mix(x)
			}
			_ = x
		}()
	}
	wg.Wait()
	runtime.GC()
	readyThreads := threadIDs()
	readyGC := func() uint32 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.NumGC
	}()
	say("INFO gomaxprocs=%d threads=%s locked_tid=%d", runtime.GOMAXPROCS(0),
		joinInts(readyThreads), lockedTID)
	say("READY")

	ticker := time.NewTicker(tickEvery)
	defer ticker.Stop()
	var tick uint64
	var garbage [][]byte
	lastLaps := uint64(0)
	for range ticker.C {
		if now := syscall.Getpid(); now != pid {
			fail("getpid() = %d, was %d", now, pid)
		}
		present := map[int]bool{}
		for _, id := range threadIDs() {
			present[id] = true
		}
		for _, id := range readyThreads {
			if !present[id] {
				fail("OS thread %d of the Go runtime is gone (threads at READY: %s)", id,
					joinInts(readyThreads))
			}
		}
		cm.verify()
		k := int(mix(tick^nonce) % mapSize)
		cm.set(k, strconv.FormatUint(mix(tick), 36))
		if laps := r.laps.Load(); laps < lastLaps {
			fail("ring laps went back")
		} else {
			lastLaps = laps
		}
		garbage = append(garbage, make([]byte, 64<<10))
		if len(garbage) > 32 {
			garbage = garbage[1:]
		}
		if tick%gcEvery == 0 {
			runtime.GC()
		}
		if _, err := os.Stat(stopFile); err == nil {
			break
		} else if !os.IsNotExist(err) {
			fail("stat stop file: %v", err)
		}
		tick++
		say("TICK %d pid=%d tids=%s nonce=%016x usr1=%d laps=%d timers=%d goroutines=%d",
			tick, pid, joinInts(readyThreads), nonce, usr1.Load(), lastLaps, timerHit.Load(), runtime.NumGoroutine())
	}

	// Everything must still move.
	laps, timers, slept, beat := r.laps.Load(), timerHit.Load(), sleeps.Load(), beats.Load()
	waitFor("goroutine ring stalled", func() bool { return r.laps.Load() >= laps+3 })
	waitFor("AfterFunc timers stopped firing", func() bool { return timerHit.Load() >= timers+3 })
	waitFor("sleeping goroutines stopped waking", func() bool { return sleeps.Load() >= slept+sleepers })
	waitFor("locked-thread goroutine stopped", func() bool { return beats.Load() >= beat+3 })
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.NumGC <= readyGC {
		fail("GC count %d did not grow past %d", ms.NumGC, readyGC)
	}
	cm.verify()
	say("DONE ok")
}
