// Command httpserver is the net/http service of the inet package's real
// programs test (programs_test.go): it serves generated items and a small
// in-memory key-value store, so that a restored server is seen to keep its
// memory as well as its connections.
//
//	httpserver ADDR
//
// GET /item?i=N answers item N (itemBody: the test computes the same bytes),
// with X-Remote (the client's address as the server sees it) and X-Served
// (requests served so far, which keeps counting across a restore).
// PUT /kv/KEY stores the body; GET /kv/KEY returns it.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
)

// itemBody is item i: a header line then (i*7919)%100000 letters.
func itemBody(i int) []byte {
	n := (i * 7919) % 100000
	b := make([]byte, 0, n+32)
	b = fmt.Appendf(b, "item %d size %d\n", i, n)
	for j := 0; j < n; j++ {
		b = append(b, byte('a'+(i+j)%26))
	}
	return b
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: httpserver ADDR")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var served atomic.Int64
	var mu sync.Mutex
	kv := map[string][]byte{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /item", func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(r.URL.Query().Get("i"))
		if err != nil || i < 0 {
			http.Error(w, "bad i", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Remote", r.RemoteAddr)
		w.Header().Set("X-Served", strconv.FormatInt(served.Add(1), 10))
		w.Write(itemBody(i))
	})
	mux.HandleFunc("PUT /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		kv[r.PathValue("key")] = b
		mu.Unlock()
		w.Header().Set("X-Remote", r.RemoteAddr)
		w.Header().Set("X-Served", strconv.FormatInt(served.Add(1), 10))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		b, ok := kv[r.PathValue("key")]
		mu.Unlock()
		w.Header().Set("X-Remote", r.RemoteAddr)
		w.Header().Set("X-Served", strconv.FormatInt(served.Add(1), 10))
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	})
	fmt.Fprintln(os.Stderr, "httpserver: listening on", ln.Addr())
	fmt.Fprintln(os.Stderr, (&http.Server{Handler: mux}).Serve(ln))
	os.Exit(1)
}
