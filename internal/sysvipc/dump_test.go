package sysvipc

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/seamless-linux/seamless/internal/image"
)

// Tables as Linux 6.x prints them (ipc/util.c's sysvipc_*_proc_show).
const (
	shmTable = `       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
  10010925     131072   600                    56 15152 15231      0   101   104   101   104 1796420798 1796420798 1796408172                  4096                     0
         0     360456  1600                 65536 15956 15964      2  1234  5678     0     0 1796422943 1796422943 1796422942                  4096                     0
`
	semTable = `       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime
 -12345678          3   666          4  1234  5678     0     0          0 1796422942
`
	msgTable = `       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime
`
)

// object is what the dump reads from one row of a table.
type object struct {
	id    int
	key   int32
	mode  uint32
	owner image.SysVOwner
}

func TestParseTable(t *testing.T) {
	tests := []struct {
		name  string
		table string
		idCol string
		want  []object
	}{
		{"shared memory", shmTable, "shmid", []object{
			{131072, 10010925, 0o600, image.SysVOwner{UID: 101, GID: 104}},
			{360456, 0, 0o1600, image.SysVOwner{UID: 1234, GID: 5678}},
		}},
		{"semaphores", semTable, "semid", []object{
			{3, -12345678, 0o666, image.SysVOwner{UID: 1234, GID: 5678}},
		}},
		{"no message queue", msgTable, "msqid", nil},
		{"nothing at all", "", "shmid", nil},
	}
	for _, tt := range tests {
		rows, err := parseTable(strings.NewReader(tt.table))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var got []object
		for _, r := range rows {
			got = append(got, object{r.int(tt.idCol), int32(r.int("key")), r.mode(), r.owner()})
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: objects %+v, want %+v", tt.name, got, tt.want)
		}
	}
	rows, _ := parseTable(strings.NewReader(shmTable))
	if r := rows[1]; r.int("cpid") != 15956 || r["size"] != "65536" || r.int("nattch") != 2 {
		t.Errorf("segment row %v", r)
	}
}

// TestParseTableShortLine: a line with fewer fields than the header leaves
// the missing columns absent (read as 0), not shifted.
func TestParseTableShortLine(t *testing.T) {
	rows, err := parseTable(strings.NewReader("key shmid perms\n 7 42\n"))
	if err != nil || len(rows) != 1 {
		t.Fatalf("rows %v, %v", rows, err)
	}
	if r := rows[0]; r.int("shmid") != 42 || r.int("key") != 7 || r.mode() != 0 {
		t.Errorf("row %v", r)
	}
}

// TestSegmentDestroyed: SHM_DEST in the perms column is a segment whose
// removal was requested; the mode keeps only the permission bits.
func TestSegmentDestroyed(t *testing.T) {
	rows, err := parseTable(strings.NewReader(shmTable))
	if err != nil {
		t.Fatal(err)
	}
	if rows[0].mode()&shmDest != 0 || rows[1].mode()&shmDest == 0 || rows[1].mode()&0o777 != 0o600 {
		t.Errorf("modes %o, %o: want the second one destroyed, both 0600", rows[0].mode(), rows[1].mode())
	}
}

func TestExists(t *testing.T) {
	p := filepath.Join(t.TempDir(), "shm")
	if err := os.WriteFile(p, []byte(shmTable), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id   int
		key  int32
		want bool
		err  string
	}{
		{131072, 10010925, true, ""},
		{360456, 0, true, ""},
		{131072, 99, false, "ID 131072 now belongs to another object (key 10010925)"},
		{5, 10010925, false, ""},
	}
	for _, tt := range tests {
		got, err := exists(p, "shmid", tt.id, tt.key)
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("exists(%d, key %d) = %v, %v; want %v, error %q", tt.id, tt.key, got, err, tt.want, tt.err)
		}
	}
	if _, err := exists(filepath.Join(t.TempDir(), "none"), "shmid", 1, 0); err == nil {
		t.Error("exists of a missing table: no error")
	}
}
