package image

import (
	"strings"
	"testing"
)

func TestValidateFiles(t *testing.T) {
	proc := func(pid, ppid int) *Process {
		return &Process{PID: pid, PPID: ppid, PGID: 10, SID: 10, Ctty: -1, Threads: []*Thread{{TID: pid}}}
	}
	deleted := func(id int, mode uint32) *Ref {
		return &Ref{Path: "/tmp/x", Deleted: true, ID: id, Mode: mode, Size: 8192, Contents: "file-1.img"}
	}
	tests := []struct {
		name   string
		change func(t *Tree)
		want   string // substring of the error; "" for valid
	}{
		{"plain", func(*Tree) {}, ""},
		{"session outside the namespace", func(t *Tree) { t.Processes[0].SID = 0 }, ""},
		{"negative session", func(t *Tree) { t.Processes[0].SID = -1 }, "bad process group"},
		{"group beyond any pid", func(t *Tree) { t.Processes[1].PGID = MaxPID + 1 }, "bad process group"},
		{"table of the parent", func(t *Tree) { t.Processes[1].FDTable = 10 }, ""},
		{"table of the grandparent through the parent", func(t *Tree) {
			t.Processes[1].FDTable, t.Processes[2].FDTable = 10, 10
		}, ""},
		{"table not the parent's", func(t *Tree) { t.Processes[2].FDTable = 10 }, "not its parent's"},
		{"table of the root for the root", func(t *Tree) { t.Processes[0].FDTable = 10 }, "not its parent's"},
		{"epoll watch of a known file", func(t *Tree) {
			t.Files = append(t.Files, &File{ID: 2, Kind: FileEpoll, Epoll: &Epoll{Watches: []EpollWatch{{FD: 5, File: 1}}}})
		}, ""},
		{"epoll watch of an unknown file", func(t *Tree) {
			t.Files = append(t.Files, &File{ID: 2, Kind: FileEpoll, Epoll: &Epoll{Watches: []EpollWatch{{FD: 5, File: 9}}}})
		}, "unknown file 9"},
		{"namespace of the tree", func(t *Tree) {
			t.Files = append(t.Files, &File{ID: 2, Kind: FileNamespace, Namespace: &Namespace{Type: "net", PID: 11}})
		}, ""},
		{"namespace of a stranger", func(t *Tree) {
			t.Files = append(t.Files, &File{ID: 2, Kind: FileNamespace, Namespace: &Namespace{Type: "net", PID: 99}})
		}, "not in the tree"},
		{"namespace of no kind", func(t *Tree) {
			t.Files = append(t.Files, &File{ID: 2, Kind: FileNamespace, Namespace: &Namespace{Type: "../x", PID: 10}})
		}, "not in the tree"},
		{"pidfd of a stranger", func(t *Tree) {
			t.Files = append(t.Files, &File{ID: 2, Kind: FilePidfd, Pidfd: &Pidfd{PID: 99}})
		}, "pidfd of 99"},
		{"deleted file", func(t *Tree) { t.Files[0].Ref = deleted(1, 0o100600) }, ""},
		{"deleted working directory", func(t *Tree) { t.Processes[0].CwdFile = deleted(2, 0o040700) }, ""},
		{"working directory of a file", func(t *Tree) { t.Processes[0].CwdFile = deleted(2, 0o100600) },
			"working directory object 2 is not a directory"},
		{"one object, two modes", func(t *Tree) {
			t.Files[0].Ref = deleted(1, 0o100600)
			t.Files = append(t.Files, &File{ID: 2, Kind: FileRegular, Ref: deleted(1, 0o100644)})
		}, "described in two ways"},
		{"extent past the end", func(t *Tree) {
			r := deleted(1, 0o100600)
			r.Runs = []Run{{Addr: 4096, Pages: 2}}
			t.Files[0].Ref = r
		}, "data extent"},
		{"contents out of the image", func(t *Tree) {
			r := deleted(1, 0o100600)
			r.Contents = "../etc/shadow"
			t.Files[0].Ref = r
		}, "not a plain file name"},
		{"memfd without its name", func(t *Tree) {
			r := deleted(1, 0o100600)
			r.Memfd = true
			t.Files[0].Ref = r
		}, "memfd named"},
		{"owner of another kind", func(t *Tree) { t.Files[0].Owner = &Owner{Type: 7, PID: 10} }, "owner of its signals"},
		{"owner in the tree", func(t *Tree) { t.Files[0].Owner = &Owner{Type: 1, PID: 11} }, ""},
		{"owner thread in the tree", func(t *Tree) { t.Files[0].Owner = &Owner{Type: 0, PID: 12} }, ""},
		{"owner outside the tree", func(t *Tree) { t.Files[0].Owner = &Owner{Type: 1, PID: 99} }, "owner of its signals"},
	}
	for _, tt := range tests {
		tree := &Tree{Root: 10, Processes: []*Process{proc(10, 1), proc(11, 10), proc(12, 11)},
			Files: []*File{{ID: 1, Kind: FileRegular, Ref: &Ref{Path: "/etc/hosts", Mode: 0o100644}}}}
		tt.change(tree)
		err := tree.Validate(map[string]int64{TreeName: 100, "file-1.img": 16384})
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: validate = %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: validate = %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}
