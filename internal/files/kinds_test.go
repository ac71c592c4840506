package files

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/fileref"
	"github.com/seamless-linux/seamless/internal/image"
)

// TestKindsComplete checks that every kind the checkpoint can produce
// answers plan, checkpoint and restore, and that the image knows it as
// the kind defines it: a kind without an open would be checkpointed and
// then refused, one without a check would be accepted by plan unseen, one
// the image did not know (or whose record it decoded as another type)
// would be refused by the restore. (TestKindsAgree in test/roundtrip runs
// each through all three on a real process.)
func TestKindsComplete(t *testing.T) {
	// The kinds an image may hold (image.FileKinds) are the kinds carried.
	all := image.FileKinds()
	if got := Kinds(); !slices.Equal(got, all) {
		t.Errorf("Kinds() = %v, want the kinds of image %v", got, all)
	}
	for _, k := range kinds {
		if k.is == nil || k.check == nil || k.dump == nil || k.open == nil {
			t.Errorf("kind %q: is, check, dump and open set: %v %v %v %v", k.name, k.is != nil, k.check != nil, k.dump != nil, k.open != nil)
		}
		if byName[k.name] != k {
			t.Errorf("kind %q is in the table twice", k.name)
		}
		// A kind's own state is its record, or the file its Ref names
		// (checked by the image), or both (a FIFO); except for /dev/tty,
		// which the restored process opens again by its name.
		if k.record == nil && !k.ref && k.name != KindCtty {
			t.Errorf("kind %q: a record %v and a file reference %v", k.name, k.record != nil, k.ref)
		}
		if k.record == nil {
			continue
		}
		// The image decodes the record as the kind's own type.
		rec := k.record()
		b, err := json.Marshal(&image.File{ID: 1, Kind: k.name, Record: rec})
		if err != nil {
			t.Errorf("kind %q: encode: %v", k.name, err)
			continue
		}
		var f image.File
		if err := json.Unmarshal(b, &f); err != nil {
			t.Errorf("kind %q: decode %s: %v", k.name, b, err)
			continue
		}
		if reflect.TypeOf(f.Record) != reflect.TypeOf(rec) {
			t.Errorf("kind %q: record decoded as %T, want %T", k.name, f.Record, rec)
		}
	}
}

// TestClassify: the kinds are asked in the order of the table, and a
// descriptor no kind has is refused with an error naming it.
func TestClassify(t *testing.T) {
	chr := func(major, minor uint32) unix.Stat_t {
		return unix.Stat_t{Mode: unix.S_IFCHR | 0o666, Rdev: unix.Mkdev(major, minor)}
	}
	tests := []struct {
		link  string
		st    unix.Stat_t
		flags int
		kind  string
		err   string
	}{
		{"anon_inode:[eventfd]", unix.Stat_t{}, 0, KindEventfd, ""},
		{"anon_inode:[eventpoll]", unix.Stat_t{Mode: unix.S_IFREG | 0o600}, 0, KindEpoll, ""},
		{"anon_inode:inotify", unix.Stat_t{}, 0, KindInotify, ""},
		{"anon_inode:[signalfd]", unix.Stat_t{}, 0, KindSignalfd, ""},
		{"anon_inode:[timerfd]", unix.Stat_t{}, 0, KindTimerfd, ""},
		{"anon_inode:[pidfd]", unix.Stat_t{}, 0, KindPidfd, ""},
		{"pidfd:[12]", unix.Stat_t{}, 0, KindPidfd, ""},
		{"anon_inode:[fanotify]", unix.Stat_t{}, 0, "", "fanotify group"},
		{"anon_inode:[io_uring]", unix.Stat_t{Mode: unix.S_IFREG}, 0, "", "io_uring instance"},
		{"anon_inode:[something]", unix.Stat_t{}, 0, "", "anon_inode:[something]"},
		// O_PATH first, whatever the file.
		{"anon_inode:[io_uring]", unix.Stat_t{}, unix.O_PATH, KindPath, ""},
		{"/srv", unix.Stat_t{Mode: unix.S_IFDIR}, 0, KindDirectory, ""},
		{"pipe:[77]", unix.Stat_t{Mode: unix.S_IFIFO}, 0, KindPipe, ""},
		{"/run/fifo", unix.Stat_t{Mode: unix.S_IFIFO}, 0, KindFIFO, ""},
		{"socket:[78]", unix.Stat_t{Mode: unix.S_IFSOCK}, 0, image.FileSocket, ""},
		{"/dev/null", chr(1, 3), 0, KindDevice, ""},
		{"/dev/ptmx", chr(5, 2), 0, KindPtyMaster, ""},
		{"/dev/tty", chr(5, 0), 0, KindCtty, ""},
		// A slave whose master the tree does not hold is a terminal.
		{"/dev/pts/3", chr(136, 3), 0, KindTerminal, ""},
		{"/dev/kvm", chr(10, 232), 0, "", "character device /dev/kvm (10:232)"},
		{"/dev/sda", unix.Stat_t{Mode: unix.S_IFBLK, Rdev: unix.Mkdev(8, 0)}, 0, "", "block device /dev/sda"},
	}
	s := NewScope(nil)
	for _, tt := range tests {
		d := &desc{link: tt.link, st: tt.st, info: &fdinfo{flags: tt.flags}}
		if tt.st.Mode&unix.S_IFMT == unix.S_IFCHR && CharDeviceKind(tt.st.Rdev) == "terminal" {
			// The hung-up test asks the terminal itself: a live one.
			f, err := os.Open("/dev/ptmx")
			if err != nil {
				t.Skip(err)
			}
			defer f.Close()
			d.local = f
		}
		k, err := classify(s, d)
		name := ""
		if k != nil {
			name = k.name
		}
		if name != tt.kind || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("classify(%q, %#o) = %q, %v; want %q, error with %q", tt.link, tt.st.Mode, name, err, tt.kind, tt.err)
		}
	}
}

func TestParseLock(t *testing.T) {
	tests := []struct {
		rec  string
		want image.Lock
		err  string
	}{
		{"1: POSIX  ADVISORY  WRITE 1234 fe:00:9980358 0 EOF", image.Lock{Kind: "POSIX", Write: true, PID: 1234, End: -1}, ""},
		{"2: FLOCK  ADVISORY  READ 99 fe:00:1 0 EOF", image.Lock{Kind: "FLOCK", PID: 99, End: -1}, ""},
		{"3: OFDLCK ADVISORY  READ -1 fe:00:1 10 19", image.Lock{Kind: "OFDLCK", PID: -1, Start: 10, End: 19}, ""},
		{"4: LEASE  ACTIVE    READ  4242 fe:00:1 0 EOF", image.Lock{Kind: "LEASE", PID: 4242, End: -1}, ""},
		{"5: LEASE  ACTIVE    WRITE 4242 fe:00:1 0 EOF", image.Lock{Kind: "LEASE", Write: true, PID: 4242, End: -1}, ""},
		{"6: LEASE  BREAKING  READ  4242 fe:00:1 0 EOF", image.Lock{}, "lease being broken"},
		{"7: DELEG  ACTIVE    READ  4242 fe:00:1 0 EOF", image.Lock{}, "delegation"},
		{"8: POSIX  MANDATORY WRITE 1 fe:00:1 0 EOF", image.Lock{}, "mandatory"},
		{"9: POSIX", image.Lock{}, "lock record"},
	}
	for _, tt := range tests {
		l, err := parseLock(tt.rec)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseLock(%q) = %v, want an error with %q", tt.rec, err, tt.err)
			}
			continue
		}
		if err != nil || l != tt.want {
			t.Errorf("parseLock(%q) = %+v, %v; want %+v", tt.rec, l, err, tt.want)
		}
	}
}

func TestReopenFlags(t *testing.T) {
	tests := []struct {
		kind        string
		flags, want int
	}{
		// O_TMPFILE shows as __O_TMPFILE|O_DIRECTORY on a regular file.
		{KindRegular, unix.O_RDWR | fileref.OTmpfile | unix.O_DIRECTORY | unix.O_LARGEFILE, unix.O_RDWR | unix.O_LARGEFILE},
		{KindRegular, unix.O_WRONLY | unix.O_APPEND | unix.O_ASYNC | unix.O_CLOEXEC, unix.O_WRONLY | unix.O_APPEND},
		{KindDirectory, unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW, unix.O_DIRECTORY | unix.O_NOFOLLOW},
		{KindMemfd, unix.O_RDONLY | unix.O_NOATIME, unix.O_NOATIME},
	}
	for _, tt := range tests {
		if got := reopenFlags(&image.File{Kind: tt.kind, Flags: tt.flags}); got != tt.want {
			t.Errorf("reopenFlags(%s, %#o) = %#o, want %#o", tt.kind, tt.flags, got, tt.want)
		}
	}
}

func TestWatchOffsets(t *testing.T) {
	ws := []EpollWatch{{FD: 70}, {FD: 5}, {FD: 70}, {FD: 70}, {FD: 5}}
	got := watchOffsets(ws)
	want := []int{0, 0, 1, 2, 1}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("watchOffsets = %v, want %v", got, want)
		}
	}
}
