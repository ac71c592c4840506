package lab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// MemcacheConn is a minimal memcached text-protocol client: enough to fill a
// server with keys, count the ones that survived, and probe it.
type MemcacheConn struct {
	c  net.Conn
	rd *bufio.Reader
	wr *bufio.Writer
}

// DialMemcache connects to memcached at addr.
func DialMemcache(addr string, timeout time.Duration) (*MemcacheConn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("connect to memcached at %s: %w", addr, err)
	}
	return &MemcacheConn{c: c, rd: bufio.NewReaderSize(c, 64<<10), wr: bufio.NewWriterSize(c, 64<<10)}, nil
}

// Close closes the connection.
func (m *MemcacheConn) Close() error { return m.c.Close() }

// LocalAddr is the client side of the connection, to tell connections apart.
func (m *MemcacheConn) LocalAddr() string { return m.c.LocalAddr().String() }

// testKey and testValue define the data set the lab stores and checks.
func testKey(i int) string { return "seamless:key:" + strconv.Itoa(i) }

func testValue(i, size int) []byte {
	v := []byte("value-" + strconv.Itoa(i) + "-")
	for len(v) < size {
		v = append(v, byte('a'+i%26))
	}
	return v
}

// Set stores one key and waits for STORED.
func (m *MemcacheConn) Set(key string, val []byte, timeout time.Duration) error {
	_ = m.c.SetDeadline(time.Now().Add(timeout))
	fmt.Fprintf(m.wr, "set %s 0 0 %d\r\n", key, len(val))
	m.wr.Write(val)
	m.wr.WriteString("\r\n")
	if err := m.wr.Flush(); err != nil {
		return fmt.Errorf("memcached set %s: %w", key, err)
	}
	line, err := m.rd.ReadString('\n')
	if err != nil {
		return fmt.Errorf("memcached set %s: %w", key, err)
	}
	if strings.TrimSpace(line) != "STORED" {
		return fmt.Errorf("memcached set %s: %q", key, strings.TrimSpace(line))
	}
	return nil
}

// GetMulti fetches keys in one request and returns the values found.
func (m *MemcacheConn) GetMulti(keys []string, timeout time.Duration) (map[string][]byte, error) {
	_ = m.c.SetDeadline(time.Now().Add(timeout))
	m.wr.WriteString("get " + strings.Join(keys, " ") + "\r\n")
	if err := m.wr.Flush(); err != nil {
		return nil, fmt.Errorf("memcached get: %w", err)
	}
	out := map[string][]byte{}
	for {
		line, err := m.rd.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("memcached get: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "END" {
			return out, nil
		}
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "VALUE" {
			return nil, fmt.Errorf("memcached get: unexpected line %q", line)
		}
		n, err := strconv.Atoi(f[3])
		if err != nil {
			return nil, fmt.Errorf("memcached get: bad length in %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(m.rd, buf); err != nil {
			return nil, fmt.Errorf("memcached get %s: %w", f[1], err)
		}
		out[f[1]] = buf[:n]
	}
}

// Stat returns one field of the "stats" command.
func (m *MemcacheConn) Stat(name string, timeout time.Duration) (string, error) {
	_ = m.c.SetDeadline(time.Now().Add(timeout))
	m.wr.WriteString("stats\r\n")
	if err := m.wr.Flush(); err != nil {
		return "", fmt.Errorf("memcached stats: %w", err)
	}
	val := ""
	for {
		line, err := m.rd.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("memcached stats: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "END" {
			return val, nil
		}
		if f := strings.Fields(line); len(f) == 3 && f[1] == name {
			val = f[2]
		}
	}
}

// Fill stores keys 0..n-1 with values of valueSize bytes, pipelined with
// noreply, then checks the count with a final round trip.
func (m *MemcacheConn) Fill(ctx context.Context, n, valueSize int) error {
	const batch = 1000
	for i := 0; i < n; i += batch {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("fill memcached: %w", err)
		}
		_ = m.c.SetDeadline(time.Now().Add(30 * time.Second))
		var b bytes.Buffer
		for j := i; j < min(i+batch, n); j++ {
			v := testValue(j, valueSize)
			fmt.Fprintf(&b, "set %s 0 0 %d noreply\r\n", testKey(j), len(v))
			b.Write(v)
			b.WriteString("\r\n")
		}
		if _, err := m.wr.Write(b.Bytes()); err != nil {
			return fmt.Errorf("fill memcached: %w", err)
		}
	}
	if err := m.wr.Flush(); err != nil {
		return fmt.Errorf("fill memcached: %w", err)
	}
	// The server handles requests in order: once this answers, all sets are done.
	if _, err := m.Stat("curr_items", 60*time.Second); err != nil {
		return fmt.Errorf("fill memcached: %w", err)
	}
	return nil
}

// Count checks keys 0..n-1 and returns how many are present with the right value.
func (m *MemcacheConn) Count(ctx context.Context, n, valueSize int) (int, error) {
	const batch = 200
	found := 0
	for i := 0; i < n; i += batch {
		if err := ctx.Err(); err != nil {
			return found, fmt.Errorf("count memcached keys: %w", err)
		}
		keys := make([]string, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			keys = append(keys, testKey(j))
		}
		got, err := m.GetMulti(keys, 30*time.Second)
		if err != nil {
			return found, err
		}
		for j := i; j < min(i+batch, n); j++ {
			if v, ok := got[testKey(j)]; ok && bytes.Equal(v, testValue(j, valueSize)) {
				found++
			}
		}
	}
	return found, nil
}
