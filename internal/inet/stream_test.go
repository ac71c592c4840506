package inet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// patternAt is byte i of the test stream: little-endian uint32 counters,
// so that a lost, repeated or reordered chunk is seen at its offset.
func patternAt(i uint64) byte { return byte(uint32(i/4) >> (8 * (i % 4))) }

func fillPattern(b []byte, off uint64) {
	for i := range b {
		b[i] = patternAt(off + uint64(i))
	}
}

// streamer writes the pattern to a connection and checks what comes back
// (the workload echoes it).
type streamer struct {
	c                net.Conn
	written, read    atomic.Uint64
	stop, readerHold chan struct{}
	done             chan error
	wg               sync.WaitGroup
}

// newStreamer starts writing (paced at about 2 MB/s) and, unless hold is
// set, reading; with hold, reading starts at release().
func newStreamer(c net.Conn, hold bool) *streamer {
	s := &streamer{c: c, stop: make(chan struct{}), readerHold: make(chan struct{}), done: make(chan error, 1)}
	if !hold {
		close(s.readerHold)
	}
	s.wg.Add(1)
	go s.writer()
	go s.reader()
	return s
}

func (s *streamer) writer() {
	defer s.wg.Done()
	buf := make([]byte, 4096)
	for {
		select {
		case <-s.stop:
			s.c.(interface{ CloseWrite() error }).CloseWrite()
			return
		default:
		}
		off := s.written.Load()
		fillPattern(buf, off)
		n, err := s.c.Write(buf)
		s.written.Add(uint64(n))
		if err != nil {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (s *streamer) reader() {
	<-s.readerHold
	buf := make([]byte, 65536)
	for {
		n, err := s.c.Read(buf)
		off := s.read.Load()
		for i := 0; i < n; i++ {
			if buf[i] != patternAt(off+uint64(i)) {
				s.done <- fmt.Errorf("byte %d: got %#x, want %#x", off+uint64(i), buf[i], patternAt(off+uint64(i)))
				return
			}
		}
		s.read.Add(uint64(n))
		if errors.Is(err, io.EOF) {
			s.done <- nil
			return
		}
		if err != nil {
			s.done <- err
			return
		}
	}
}

func (s *streamer) release() {
	select {
	case <-s.readerHold:
	default:
		close(s.readerHold)
	}
}

// finish stops writing (FIN) and waits for the echo to end; it reports the
// bytes written and read back.
func (s *streamer) finish(timeout time.Duration) (uint64, uint64, error) {
	close(s.stop)
	s.release()
	s.c.SetDeadline(time.Now().Add(timeout))
	s.wg.Wait()
	err := <-s.done
	return s.written.Load(), s.read.Load(), err
}
