package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeMemcached serves the subset of the text protocol the lab uses.
func fakeMemcached(t *testing.T) (string, func(drop int)) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var mu sync.Mutex
	data := map[string][]byte{}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				rd, wr := bufio.NewReader(c), bufio.NewWriter(c)
				for {
					line, err := rd.ReadString('\n')
					if err != nil {
						return
					}
					f := strings.Fields(line)
					switch {
					case len(f) >= 5 && f[0] == "set":
						n, _ := strconv.Atoi(f[4])
						buf := make([]byte, n+2)
						if _, err := io.ReadFull(rd, buf); err != nil {
							return
						}
						mu.Lock()
						data[f[1]] = buf[:n]
						mu.Unlock()
						if len(f) < 6 || f[5] != "noreply" {
							wr.WriteString("STORED\r\n")
						}
					case len(f) >= 2 && f[0] == "get":
						mu.Lock()
						for _, k := range f[1:] {
							if v, ok := data[k]; ok {
								fmt.Fprintf(wr, "VALUE %s 0 %d\r\n%s\r\n", k, len(v), v)
							}
						}
						mu.Unlock()
						wr.WriteString("END\r\n")
					case len(f) == 1 && f[0] == "stats":
						mu.Lock()
						fmt.Fprintf(wr, "STAT pid 1\r\nSTAT curr_items %d\r\nEND\r\n", len(data))
						mu.Unlock()
					}
					wr.Flush()
				}
			}(c)
		}
	}()
	drop := func(n int) {
		mu.Lock()
		defer mu.Unlock()
		for i := 0; i < n; i++ {
			delete(data, testKey(i))
		}
	}
	return l.Addr().String(), drop
}

func TestMemcacheFillCount(t *testing.T) {
	addr, drop := fakeMemcached(t)
	c, err := DialMemcache(addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Fill(ctx, 2500, 64); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Count(ctx, 2500, 64); err != nil || n != 2500 {
		t.Fatalf("count = %d, %v", n, err)
	}
	drop(1000)
	if n, err := c.Count(ctx, 2500, 64); err != nil || n != 1500 {
		t.Fatalf("count after drop = %d, %v", n, err)
	}
	if v, err := c.Stat("curr_items", time.Second); err != nil || v != "1500" {
		t.Fatalf("curr_items = %q, %v", v, err)
	}
}

func TestProbeAgainstLiveServer(t *testing.T) {
	addr, _ := fakeMemcached(t)
	c, err := DialMemcache(addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set(probeKey, probeValue, time.Second); err != nil {
		t.Fatal(err)
	}
	c.Close()
	p := &Probe{Addr: addr, Key: probeKey, Want: probeValue, Interval: 10 * time.Millisecond}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if !p.WaitAnswering(time.Second) {
		t.Fatal("service not answering")
	}
	r := p.Stop()
	if !r.ConnectionSurvived || r.Failed != 0 || r.GapMS != 0 || r.Requests < 3 {
		t.Fatalf("result = %+v", r)
	}
}
