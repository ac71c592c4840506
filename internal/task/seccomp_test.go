package task

import (
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/proc"
)

// bpf assembles struct sock_filter entries.
func bpf(insns ...[4]uint32) []byte {
	var b []byte
	for _, in := range insns {
		b = binary.NativeEndian.AppendUint16(b, uint16(in[0]))
		b = append(b, byte(in[1]), byte(in[2]))
		b = binary.NativeEndian.AppendUint32(b, in[3])
	}
	return b
}

func TestReturnsUserNotif(t *testing.T) {
	ldNr := [4]uint32{unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, 0, 0, 0}
	ret := func(k uint32) [4]uint32 { return [4]uint32{unix.BPF_RET | unix.BPF_K, 0, 0, k} }
	jeq := [4]uint32{unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, 0, 1, unix.SYS_GETCPU}
	tests := []struct {
		name string
		prog []byte
		want bool
	}{
		{"allow", bpf(ret(unix.SECCOMP_RET_ALLOW)), false},
		{"errno", bpf(ldNr, jeq, ret(unix.SECCOMP_RET_ERRNO|1), ret(unix.SECCOMP_RET_ALLOW)), false},
		{"user notif", bpf(ldNr, jeq, ret(unix.SECCOMP_RET_USER_NOTIF), ret(unix.SECCOMP_RET_ALLOW)), true},
		// The constant of a jump is not a return value.
		{"notif value compared", bpf(ldNr, [4]uint32{unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, 0, 0, unix.SECCOMP_RET_USER_NOTIF},
			ret(unix.SECCOMP_RET_ALLOW)), false},
		{"kill process", bpf(ret(unix.SECCOMP_RET_KILL_PROCESS)), false},
	}
	for _, tt := range tests {
		if got := returnsUserNotif(tt.prog); got != tt.want {
			t.Errorf("%s: returnsUserNotif = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestDumpSeccompModes(t *testing.T) {
	for _, mode := range []string{"", "0"} {
		st := proc.Status{}
		if mode != "" {
			st["Seccomp"] = mode
		}
		if chain, err := dumpSeccomp(10, 11, st); err != nil || chain != nil {
			t.Errorf("mode %q: dumpSeccomp = %v, %v; want no filters", mode, chain, err)
		}
	}
	_, err := dumpSeccomp(10, 11, proc.Status{"Seccomp": "1"})
	if err == nil || !strings.Contains(err.Error(), "thread 11 of process 10 is in seccomp strict mode") {
		t.Errorf("strict mode: dumpSeccomp error %v", err)
	}
	if _, err := dumpSeccomp(10, 11, proc.Status{"Seccomp": "3"}); err == nil {
		t.Error("an unknown seccomp mode was accepted")
	}
}

func TestSeccompBeforeCreds(t *testing.T) {
	filters := []image.SeccompFilter{{Prog: make([]byte, 8)}}
	neither := image.Creds{CapEff: 1<<capSysAdmin - 1, CapPrm: 1 << capSysAdmin}
	tests := []struct {
		name string
		th   image.Thread
		from int
		want bool
	}{
		{"no filters", image.Thread{}, 0, false},
		{"no_new_privs", image.Thread{Seccomp: filters, Creds: image.Creds{NoNewPrivs: true}}, 0, false},
		{"CAP_SYS_ADMIN", image.Thread{Seccomp: filters, Creds: image.Creds{CapEff: 1 << capSysAdmin}}, 0, false},
		{"neither", image.Thread{Seccomp: filters, Creds: neither}, 0, true},
		{"neither, all shared", image.Thread{Seccomp: filters, Creds: neither}, 1, false},
	}
	for _, tt := range tests {
		if got := SeccompBeforeCreds(&tt.th, tt.from); got != tt.want {
			t.Errorf("%s: SeccompBeforeCreds = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSharedSeccomp(t *testing.T) {
	f := func(b byte, flags uint64) image.SeccompFilter {
		return image.SeccompFilter{Flags: flags, Prog: []byte{b, 0, 0, 0, 0, 0, 0, 0}}
	}
	th := func(fs ...image.SeccompFilter) *image.Thread { return &image.Thread{Seccomp: fs} }
	tests := []struct {
		name    string
		threads []*image.Thread
		want    int
	}{
		{"one thread", []*image.Thread{th(f(1, 0))}, 0},
		{"all alike", []*image.Thread{th(f(1, 0), f(2, 2)), th(f(1, 0), f(2, 2))}, 2},
		{"common prefix", []*image.Thread{th(f(1, 0), f(2, 0)), th(f(1, 0)), th(f(1, 0), f(3, 0))}, 1},
		{"flags differ", []*image.Thread{th(f(1, 0)), th(f(1, 2))}, 0},
		{"one without", []*image.Thread{th(f(1, 0)), th()}, 0},
		{"later equal only", []*image.Thread{th(f(1, 0), f(2, 0)), th(f(3, 0), f(2, 0))}, 0},
	}
	for _, tt := range tests {
		if got := SharedSeccomp(tt.threads); got != tt.want {
			t.Errorf("%s: SharedSeccomp = %d, want %d", tt.name, got, tt.want)
		}
	}
}
