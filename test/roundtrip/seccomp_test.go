package roundtrip

// Seccomp: what the image says about each thread's filters, and the modes
// seamless must refuse.

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// seccompFilterLog is SECCOMP_FILTER_FLAG_LOG.
const seccompFilterLog = 2

// imageFilter is one seccomp filter as tree.json stores it (see
// docs/image-format.md): install flags and the program, base64.
type imageFilter struct {
	Flags uint64 `json:"flags"`
	Prog  []byte `json:"prog"`
}

// threadKey names a thread of an image.
type threadKey struct{ pid, tid int }

// imageSeccomp reads the seccomp filters of every thread of the image in
// dir.
func imageSeccomp(dir string) (map[threadKey][]imageFilter, error) {
	b, err := os.ReadFile(filepath.Join(dir, "tree.json"))
	if err != nil {
		return nil, err
	}
	var tree struct {
		Processes []struct {
			PID     int `json:"pid"`
			Threads []struct {
				TID     int           `json:"tid"`
				Seccomp []imageFilter `json:"seccomp"`
			} `json:"threads"`
		} `json:"processes"`
	}
	if err := json.Unmarshal(b, &tree); err != nil {
		return nil, fmt.Errorf("%s/tree.json: %v", dir, err)
	}
	out := map[threadKey][]imageFilter{}
	for _, p := range tree.Processes {
		for _, th := range p.Threads {
			out[threadKey{p.PID, th.TID}] = th.Seccomp
		}
	}
	return out, nil
}

// checkImageSeccomp checks the filters the image in img holds against
// what /proc showed at the checkpoint (fp): as many per thread as
// Seccomp_filters counted, whole instructions, and as many with
// SECCOMP_FILTER_FLAG_LOG as the workload installed. The first image's
// filters are kept; in every later image each thread's chain must be
// exactly as it was there: what a restore installed reads back the same.
func (r *run) checkImageSeccomp(img string, fp fingerprint) {
	r.t.Helper()
	got, err := imageSeccomp(img)
	if err != nil {
		r.fatalf("%v", err)
	}
	logged := 0
	for k, chain := range got {
		for _, f := range chain {
			if len(f.Prog) == 0 || len(f.Prog)%8 != 0 {
				r.t.Errorf("%s: thread %d: seccomp program of %d bytes", img, k.tid, len(f.Prog))
			}
			if f.Flags&seccompFilterLog != 0 {
				logged++
			}
		}
		if n, ok := fp[fmt.Sprintf("pid %d tid %d status Seccomp_filters", k.pid, k.tid)]; ok && n != strconv.Itoa(len(chain)) {
			r.t.Errorf("%s: thread %d has %d seccomp filters in the image, /proc showed %s", img, k.tid, len(chain), n)
		}
	}
	if logged != r.w.seccompLog {
		r.t.Errorf("%s: %d seccomp filters with SECCOMP_FILTER_FLAG_LOG, want %d", img, logged, r.w.seccompLog)
	}
	if r.filters == nil {
		r.filters = got
		return
	}
	for k, was := range r.filters {
		// A runtime's threads may come and go; those without filters
		// tell nothing.
		if now, ok := got[k]; (ok || len(was) > 0) && !reflect.DeepEqual(now, was) {
			r.t.Errorf("%s: thread %d has the seccomp filters %s, the first image %s: a restore did not install them as they were",
				img, k.tid, describeChain(now), describeChain(was))
		}
	}
}

// describeChain summarizes a chain of filters, oldest first: each one's
// length, flags, and the CRC of its program.
func describeChain(chain []imageFilter) string {
	var parts []string
	for _, f := range chain {
		parts = append(parts, fmt.Sprintf("%d instructions flags %#x crc %08x", len(f.Prog)/8, f.Flags, crc32.ChecksumIEEE(f.Prog)))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// seccompRefused are workloads in a seccomp state seamless cannot restore.
var seccompRefused = []struct {
	name string
	want string // what the checkpoint error must name
}{
	{"seccomp_strict", "seccomp strict mode"},
	{"seccomp_notif", "SECCOMP_RET_USER_NOTIF"},
}

// TestSeccompRefused checks that a checkpoint of a thread in seccomp
// strict mode, or with a filter that notifies a user-space supervisor,
// fails with exit status 1 and a reason naming the thread, leaves no
// image, and leaves the tree running, untraced, with its state unchanged.
func TestSeccompRefused(t *testing.T) {
	for _, c := range seccompRefused {
		testRefused(t, c.name, func(r *run, tr tree) []string {
			// The refusing thread is the workload's last one.
			tids := tr[r.pid].tids
			return []string{c.want, "thread " + strconv.Itoa(tids[len(tids)-1])}
		})
	}
}
