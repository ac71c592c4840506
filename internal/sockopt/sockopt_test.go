package sockopt

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestApplies(t *testing.T) {
	tcp4 := Option{TCP: true, V4: true}
	udp6 := Option{UDP: true, V6: true}
	unixOnly := Option{Unix: true}
	tests := []struct {
		name          string
		o             Option
		family, proto int
		want          bool
	}{
		{"tcp on tcp4", tcp4, unix.AF_INET, unix.IPPROTO_TCP, true},
		{"tcp on tcp6", tcp4, unix.AF_INET6, unix.IPPROTO_TCP, false},
		{"tcp on udp4", tcp4, unix.AF_INET, unix.IPPROTO_UDP, false},
		{"udp6 on udp6", udp6, unix.AF_INET6, unix.IPPROTO_UDP, true},
		{"unix on unix", unixOnly, unix.AF_UNIX, 0, true},
		{"unix on tcp", unixOnly, unix.AF_INET, unix.IPPROTO_TCP, false},
		{"tcp on unix", tcp4, unix.AF_UNIX, 0, false},
		{"other family", tcp4, unix.AF_PACKET, unix.IPPROTO_TCP, false},
	}
	for _, tc := range tests {
		if got := tc.o.Applies(tc.family, tc.proto); got != tc.want {
			t.Errorf("%s: Applies = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestReadApply reads options that differ from a new socket's and sets
// them on another socket, phase by phase, and reads a filter back.
func TestReadApply(t *testing.T) {
	table := []Option{
		{Name: "SO_KEEPALIVE", Level: unix.SOL_SOCKET, Opt: unix.SO_KEEPALIVE, Kind: Int, UDP: true, V4: true},
		{Name: "SO_RCVTIMEO", Level: unix.SOL_SOCKET, Opt: unix.SO_RCVTIMEO, Kind: Timeval, UDP: true, V4: true},
		{Name: "SO_PRIORITY", Level: unix.SOL_SOCKET, Opt: unix.SO_PRIORITY, Kind: Int, UDP: true, V4: true, Phase: Final},
		{Name: "SO_MARK", Level: unix.SOL_SOCKET, Opt: unix.SO_MARK, Kind: Int, UDP: true, V4: true},
	}
	sock := func() int {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	a, fresh, b := sock(), sock(), sock()
	unix.SetsockoptInt(a, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	unix.SetsockoptInt(a, unix.SOL_SOCKET, unix.SO_PRIORITY, 5)
	tv := unix.NsecToTimeval(1500e6)
	unix.SetsockoptTimeval(a, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	v, err := Read(a, fresh, unix.AF_INET, unix.IPPROTO_UDP, table, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Ints) != 3 || v.Ints["SO_KEEPALIVE"] != 1 || v.Ints["SO_PRIORITY"] != 5 || v.Ints["SO_RCVTIMEO"] != 1500e6 {
		t.Fatalf("read %v, want SO_KEEPALIVE 1, SO_PRIORITY 5, SO_RCVTIMEO 1.5 s (SO_MARK is the default)", v.Ints)
	}
	if err := Apply(b, unix.AF_INET, unix.IPPROTO_UDP, table, v, Early, false, nil); err != nil {
		t.Fatal(err)
	}
	if p, _ := unix.GetsockoptInt(b, unix.SOL_SOCKET, unix.SO_PRIORITY); p != 0 {
		t.Errorf("a Final option was set early (SO_PRIORITY %d)", p)
	}
	if err := Apply(b, unix.AF_INET, unix.IPPROTO_UDP, table, v, Final, false, nil); err != nil {
		t.Fatal(err)
	}
	again, err := Read(b, fresh, unix.AF_INET, unix.IPPROTO_UDP, table, false)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range v.Ints {
		if again.Ints[k] != want {
			t.Errorf("%s is %d after Apply, want %d", k, again.Ints[k], want)
		}
	}
	prog := []byte{0x06, 0, 0, 0, 0xff, 0xff, 0, 0} // ret #0xffff
	if err := AttachFilter(b, prog, true); err != nil {
		t.Fatal(err)
	}
	got, locked, err := ReadFilter(b)
	if err != nil || string(got) != string(prog) || !locked {
		t.Errorf("ReadFilter = %x, locked %v, %v; want %x, locked", got, locked, err, prog)
	}
	if got, _, err := ReadFilter(a); err != nil || got != nil {
		t.Errorf("a socket without a filter: ReadFilter = %x, %v", got, err)
	}
}
