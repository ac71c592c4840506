package files

import (
	"reflect"
	"strings"
	"testing"

	"github.com/seamless-linux/seamless/internal/image"
)

// TestParseFdinfo reads fdinfo files as Linux 6.x writes them, one per
// kind whose state fdinfo gives.
func TestParseFdinfo(t *testing.T) {
	head := "pos:\t0\nflags:\t04002\nmnt_id:\t17\nino:\t1038\n"
	tests := []struct {
		name, text string
		want       fdinfo
		err        string
	}{
		{"regular", "pos:\t4096\nflags:\t0102002\nmnt_id:\t27\nino:\t9988699\n",
			fdinfo{pos: 4096, flags: 0o102002}, ""},
		{"eventfd", head + "eventfd-count:                5\neventfd-id: 79\neventfd-semaphore: 1\n",
			fdinfo{flags: 0o4002, eventfdCount: 5, semaphore: true}, ""},
		{"eventfd counter in hex", head + "eventfd-count:               1f\neventfd-id: 80\n",
			fdinfo{flags: 0o4002, eventfdCount: 0x1f}, ""},
		{"epoll", head + "tfd:        3 events:       1d data:                3  pos:0 ino:40e sdev:10\n" +
			"tfd:       12 events: 80000019 data: ffffffffffffffff  pos:0 ino:40f sdev:10\n",
			fdinfo{flags: 0o4002, watches: []EpollWatch{{FD: 3, Events: 0x1d, Data: 3}, {FD: 12, Events: 0x80000019, Data: ^uint64(0)}}}, ""},
		{"timerfd", head + "clockid: 1\nticks: 3\nsettime flags: 01\nit_value: (29, 999961476)\nit_interval: (2, 500000000)\n",
			fdinfo{flags: 0o4002, timer: Timer{Clock: 1, Ticks: 3, SettimeFlag: 1, ValueNs: 29_999_961_476, IntervalNs: 2_500_000_000}}, ""},
		{"signalfd", head + "sigmask:\t0000000000004200\n",
			fdinfo{flags: 0o4002, sigmask: 0x4200}, ""},
		{"pidfd", "pos:\t0\nflags:\t02000002\nmnt_id:\t4\nino:\t1093389\nPid:\t3048\nNSpid:\t3048\n",
			fdinfo{flags: 0o2000002, pidfdPID: 3048}, ""},
		{"pidfd of a reaped process", head + "Pid:\t-1\n",
			fdinfo{flags: 0o4002, pidfdPID: -1}, ""},
		{"flock", "pos:\t0\nflags:\t02100001\nmnt_id:\t27\nino:\t9988699\nlock:\t1: FLOCK  ADVISORY  WRITE 3048 fe:00:9988699 0 EOF\n",
			fdinfo{flags: 0o2100001, locks: []image.Lock{{Kind: "FLOCK", Write: true, PID: 3048, End: -1}}}, ""},
		// The kernel prints watch descriptors and handle types in hex.
		{"inotify", head + "inotify wd:c ino:9869e5 sdev:fe00000 mask:2 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:e5699800e573c5ab\n" +
			"inotify wd:10 ino:1f sdev:fe00001 mask:800afce ignored_mask:0 fhandle-bytes:10 fhandle-type:4d f_handle:0001020304050607\n",
			fdinfo{flags: 0o4002, inotify: []inotifyMark{
				{wd: 12, mask: 2, sdev: 0xfe00000, htype: 1, handle: []byte{0xe5, 0x69, 0x98, 0x00, 0xe5, 0x73, 0xc5, 0xab}},
				{wd: 16, mask: 0x800afce, sdev: 0xfe00001, htype: 0x4d, handle: []byte{0, 1, 2, 3, 4, 5, 6, 7}}}}, ""},
		{"bad epoll watch", head + "tfd: x events: 1d data: 3\n", fdinfo{}, "epoll watch"},
		{"bad inotify handle", head + "inotify wd:1 ino:1 sdev:0 mask:2 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:zz\n", fdinfo{}, "inotify watch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFdinfo(strings.NewReader(tt.text))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseFdinfo = %+v, %v; want an error with %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("parseFdinfo =\n%+v\nwant\n%+v", *got, tt.want)
			}
		})
	}
}

func TestParseFdinfoLockRefused(t *testing.T) {
	got, err := parseFdinfo(strings.NewReader("pos:\t0\nflags:\t02\nlock:\t1: LEASE  BREAKING  READ  4242 fe:00:1 0 EOF\n"))
	if err != nil || got.lockErr == nil || !strings.Contains(got.lockErr.Error(), "lease being broken") {
		t.Errorf("a lease being broken: %+v, %v", got, err)
	}
}
