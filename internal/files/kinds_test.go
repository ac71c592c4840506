package files

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/fileref"
	"github.com/seamless-linux/seamless/internal/image"
)

// TestKindsComplete checks that every kind the checkpoint can produce
// answers plan, checkpoint and restore: a kind without an open would be
// checkpointed and then refused, one without a check would be accepted by
// plan unseen. (TestKindsAgree in test/roundtrip runs each through all
// three on a real process.)
func TestKindsComplete(t *testing.T) {
	// The kinds an image may hold (image.FileKinds) are the kinds carried.
	all := image.FileKinds()
	if got := Kinds(); !slices.Equal(got, all) {
		t.Errorf("Kinds() = %v, want the kinds of image %v", got, all)
	}
	for _, k := range all {
		ops, ok := kinds[k]
		if !ok || ops.check == nil || ops.dump == nil || ops.open == nil {
			t.Errorf("kind %q: in the table %v, check, dump and open set: %v", k, ok, ok && ops.check != nil && ops.dump != nil && ops.open != nil)
		}
	}
}

func TestAnonKind(t *testing.T) {
	tests := []struct {
		link, kind, err string
	}{
		{"anon_inode:[eventfd]", image.FileEventfd, ""},
		{"anon_inode:[eventpoll]", image.FileEpoll, ""},
		{"anon_inode:inotify", image.FileInotify, ""},
		{"anon_inode:[pidfd]", image.FilePidfd, ""},
		{"pidfd:[12]", image.FilePidfd, ""},
		{"anon_inode:[fanotify]", "", "fanotify group"},
		{"anon_inode:[io_uring]", "", "io_uring instance"},
		{"anon_inode:[something]", "", "anon_inode:[something]"},
	}
	for _, tt := range tests {
		k, err := anonKind(tt.link)
		if k != tt.kind || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("anonKind(%q) = %q, %v; want %q, error with %q", tt.link, k, err, tt.kind, tt.err)
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
		{image.FileRegular, unix.O_RDWR | fileref.OTmpfile | unix.O_DIRECTORY | unix.O_LARGEFILE, unix.O_RDWR | unix.O_LARGEFILE},
		{image.FileRegular, unix.O_WRONLY | unix.O_APPEND | unix.O_ASYNC | unix.O_CLOEXEC, unix.O_WRONLY | unix.O_APPEND},
		{image.FileDirectory, unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW, unix.O_DIRECTORY | unix.O_NOFOLLOW},
		{image.FileMemfd, unix.O_RDONLY | unix.O_NOATIME, unix.O_NOATIME},
	}
	for _, tt := range tests {
		if got := reopenFlags(&image.File{Kind: tt.kind, Flags: tt.flags}); got != tt.want {
			t.Errorf("reopenFlags(%s, %#o) = %#o, want %#o", tt.kind, tt.flags, got, tt.want)
		}
	}
}

func TestWatchOffsets(t *testing.T) {
	ws := []image.EpollWatch{{FD: 70}, {FD: 5}, {FD: 70}, {FD: 70}, {FD: 5}}
	got := watchOffsets(ws)
	want := []int{0, 0, 1, 2, 1}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("watchOffsets = %v, want %v", got, want)
		}
	}
}
