package main

import (
	"bytes"
	encbin "encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// Regression tests of issue 10 (findings 5, 6, 7, 12), through the
// command line: what an operator or an attacker can do to an image, and
// what seamless does then.

// editTree rewrites the image's tree.json with edit and fixes the MANIFEST
// (size and checksum), as someone who knows the format can: a checksum
// says nothing about who wrote the image.
func editTree(t *testing.T, dir string, edit func(tree map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, "tree.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // keep 64-bit numbers exact
	var tree map[string]any
	if err := dec.Decode(&tree); err != nil {
		t.Fatal(err)
	}
	edit(tree)
	if b, err = json.Marshal(tree); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	rewriteManifest(t, dir, "tree.json", b)
}

// rewriteManifest sets name's size and checksum in the MANIFEST to those of
// data (or drops the line when data is nil) and recomputes its end line.
func rewriteManifest(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, "MANIFEST")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		f := strings.Fields(line)
		switch {
		case f[0] == "end":
			continue
		case f[0] == "file" && f[3] == name:
			if data == nil {
				continue
			}
			// XXH64 of the little-endian XXH64s of each 4 MiB block.
			var sums []byte
			for off := 0; off < len(data); off += 4 << 20 {
				sums = encbin.LittleEndian.AppendUint64(sums, xxhash.Sum64(data[off:min(len(data), off+4<<20)]))
			}
			line = fmt.Sprintf("file %016x %d %s", xxhash.Sum64(sums), len(data), name)
		}
		out = append(out, line)
	}
	body := strings.Join(out, "\n") + "\n"
	body += fmt.Sprintf("end %016x\n", xxhash.Sum64([]byte(body)))
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// underLimit runs the binary with at most 2 GiB of address space, so that
// a restore that allocates without bound dies instead of the machine.
func underLimit(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", `ulimit -v 2097152; exec "$0" "$@"`, binary}, args...)...)
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errs.String(), code
}

// process returns the first process of a decoded tree.
func process(tree map[string]any) map[string]any {
	return tree["processes"].([]any)[0].(map[string]any)
}

// TestMalformedImageIsRefused: an image with valid checksums whose
// tree.json does not hold together makes inspect and restore fail with an
// error that names tree.json: no crash, no unbounded allocation, nothing
// restored (issue 10 finding 6).
func TestMalformedImageIsRefused(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name string
		edit func(tree map[string]any)
	}{
		{"null process", func(tree map[string]any) { tree["processes"] = append(tree["processes"].([]any), nil) }},
		{"null thread", func(tree map[string]any) { p := process(tree); p["threads"] = append(p["threads"].([]any), nil) }},
		{"null mapping", func(tree map[string]any) {
			p := process(tree)
			p["mappings"] = append([]any{nil}, p["mappings"].([]any)...)
		}},
		{"null file", func(tree map[string]any) { tree["files"] = append(tree["files"].([]any), nil) }},
		{"file without ref", func(tree map[string]any) {
			for _, f := range tree["files"].([]any) {
				delete(f.(map[string]any), "ref")
			}
		}},
		{"pipe without pipe", func(tree map[string]any) {
			for _, f := range tree["files"].([]any) {
				f.(map[string]any)["kind"] = "pipe"
				delete(f.(map[string]any), "pipe")
			}
		}},
		{"socket without socket", func(tree map[string]any) {
			for _, f := range tree["files"].([]any) {
				f.(map[string]any)["kind"] = "socket"
			}
		}},
		{"file mapping without file", func(tree map[string]any) {
			for _, m := range process(tree)["mappings"].([]any) {
				if m.(map[string]any)["kind"] == "file" {
					delete(m.(map[string]any), "file")
				}
			}
		}},
		{"page run of 2^63-1 pages", func(tree map[string]any) {
			for _, m := range process(tree)["mappings"].([]any) {
				if runs, ok := m.(map[string]any)["runs"].([]any); ok && m.(map[string]any)["kind"] == "anon" {
					runs[0].(map[string]any)["pages"] = json.Number("9223372036854775807")
					return
				}
			}
		}},
		{"short queued signal", func(tree map[string]any) { process(tree)["pending_shared"] = []any{"AAAA"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, pid := checkpointed(t)
			editTree(t, dir, tt.edit)
			for _, args := range [][]string{{"inspect", dir}, {"restore", "--dir", dir}} {
				out, errs, code := underLimit(t, args...)
				if strings.Contains(errs, "panic") || strings.Contains(errs, "out of memory") || code != exitFailure {
					t.Fatalf("seamless %s: exit %d, stderr %.600q; want exit %d and an error", args[0], code, errs, exitFailure)
				}
				if !strings.Contains(errs, "tree.json") || !strings.Contains(errs, "damaged") {
					t.Fatalf("seamless %s: %q does not say that tree.json is damaged", args[0], errs)
				}
				if args[0] == "restore" && out != "" {
					t.Fatalf("restore printed %q", out)
				}
			}
			if alive(pid) {
				unix.Kill(pid, unix.SIGKILL)
				t.Fatalf("process %d was restored from a malformed image", pid)
			}
		})
	}
}

// TestRestoreRefusesUntrustedImage: an image that a user owns, or could
// have changed, is never restored by root (issue 10 finding 5: a user's
// image, tree.json edited to run as uid 0 with every capability and its
// checksum recomputed, was restored as root).
func TestRestoreRefusesUntrustedImage(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name   string
		change func(dir string) (string, error) // returns the path the error names
		want   string
	}{
		{"directory of a user", func(dir string) (string, error) { return dir, os.Chown(dir, 1000, 1000) }, "owned by uid 1000"},
		{"tree.json of a user", func(dir string) (string, error) {
			p := filepath.Join(dir, "tree.json")
			return p, os.Chown(p, 1000, 1000)
		}, "owned by uid 1000"},
		{"directory writable by others", func(dir string) (string, error) { return dir, os.Chmod(dir, 0o777) }, "writable by group or others"},
		{"tree.json writable by the group", func(dir string) (string, error) {
			p := filepath.Join(dir, "tree.json")
			return p, os.Chmod(p, 0o620)
		}, "writable by group or others"},
		{"parent directory of a user", func(dir string) (string, error) {
			return filepath.Dir(dir), os.Chown(filepath.Dir(dir), 1000, 1000)
		}, "owned by uid 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, pid := checkpointed(t)
			// What the user would do: run the restored tree as root.
			editTree(t, dir, func(tree map[string]any) {
				for _, th := range process(tree)["threads"].([]any) {
					c := th.(map[string]any)["creds"].(map[string]any)
					c["uid"], c["gid"] = []any{0, 0, 0, 0}, []any{0, 0, 0, 0}
					c["cap_effective"], c["cap_permitted"] = json.Number("2199023255551"), json.Number("2199023255551")
				}
			})
			path, err := tt.change(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"inspect", dir}, {"restore", "--dir", dir}} {
				_, errs, code := seamless(t, args...)
				if code != exitFailure || !strings.Contains(errs, path+": ") || !strings.Contains(errs, tt.want) {
					t.Fatalf("seamless %s: exit %d, %q; want a refusal naming %s: %s", args[0], code, errs, path, tt.want)
				}
			}
			if alive(pid) {
				unix.Kill(pid, unix.SIGKILL)
				t.Fatalf("process %d was restored from an untrusted image", pid)
			}
		})
	}
}

// TestRestoreReadsOnlyListedFiles: a pages file that the MANIFEST does not
// list, or one outside the image, is never read (issue 10 finding 7).
func TestRestoreReadsOnlyListedFiles(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name string
		move func(t *testing.T, dir, pages string) string // returns the new "pages" value
		want string
	}{
		{"pages not listed", func(t *testing.T, dir, pages string) string {
			rewriteManifest(t, dir, pages, nil)
			return pages
		}, "is not listed in the manifest"},
		{"pages outside the image", func(t *testing.T, dir, pages string) string {
			b, err := os.ReadFile(filepath.Join(dir, pages))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(filepath.Dir(dir), "outside-pages.img"), b, 0o600)
			return "../outside-pages.img"
		}, "not a plain file name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, pid := checkpointed(t)
			pages := "pages-" + strconv.Itoa(pid) + ".img"
			name := tt.move(t, dir, pages)
			editTree(t, dir, func(tree map[string]any) { process(tree)["pages"] = name })
			for _, args := range [][]string{{"inspect", dir}, {"restore", "--dir", dir}} {
				_, errs, code := seamless(t, args...)
				if code != exitFailure || !strings.Contains(errs, tt.want) {
					t.Fatalf("seamless %s: exit %d, %q; want: %s", args[0], code, errs, tt.want)
				}
			}
			if alive(pid) {
				unix.Kill(pid, unix.SIGKILL)
				t.Fatalf("process %d was restored from pages outside the manifest", pid)
			}
		})
	}
}

// TestCheckpointDirIsItsOwn: checkpoint --dir never changes or removes a
// directory it did not make (issue 10 finding 5).
func TestCheckpointDirIsItsOwn(t *testing.T) {
	needRoot(t)
	t.Run("symlink to a directory", func(t *testing.T) {
		cmd := startSleeper(t)
		top := t.TempDir()
		target := filepath.Join(top, "etc")
		os.Mkdir(target, 0o755)
		os.Chmod(target, 0o755)
		os.WriteFile(filepath.Join(target, "keep"), []byte("x"), 0o644)
		link := filepath.Join(top, "img")
		os.Symlink(target, link)
		_, errs, code := seamless(t, "checkpoint", "--pid", strconv.Itoa(cmd.Process.Pid), "--dir", link)
		if code != exitFailure || !strings.Contains(errs, "symbolic link") {
			t.Fatalf("checkpoint --dir SYMLINK: exit %d, %q", code, errs)
		}
		if st, _ := os.Stat(target); st.Mode().Perm() != 0o755 {
			t.Fatalf("the symlink's target became %v", st.Mode().Perm())
		}
		if !alive(cmd.Process.Pid) {
			t.Fatal("a refused checkpoint killed the process")
		}
	})
	t.Run("existing empty directory, failed checkpoint", func(t *testing.T) {
		// A zombie cannot be checkpointed: the failure comes after the
		// directory was taken.
		z := exec.Command("true")
		if err := z.Start(); err != nil {
			t.Fatal(err)
		}
		defer z.Wait()
		for i := 0; i < 200 && alive(z.Process.Pid); i++ {
			unix.Nanosleep(&unix.Timespec{Nsec: 10e6}, nil)
		}
		dir := filepath.Join(t.TempDir(), "img")
		os.Mkdir(dir, 0o750)
		os.Chmod(dir, 0o750)
		_, errs, code := seamless(t, "checkpoint", "--pid", strconv.Itoa(z.Process.Pid), "--dir", dir)
		if code != exitFailure {
			t.Fatalf("checkpoint of a zombie: exit %d, %q", code, errs)
		}
		st, err := os.Stat(dir)
		if err != nil || st.Mode().Perm() != 0o750 {
			t.Fatalf("after a failed checkpoint the directory it did not make is %v (%v): want it kept as it was", st, err)
		}
	})
}

// TestExitStatus: a crash (a panic, in the command or in an engine worker)
// exits with its own status, never that of a usage error, and says where;
// inspect takes --dir like the other commands (issue 10 finding 12).
func TestExitStatus(t *testing.T) {
	for _, where := range []string{"main", "worker"} {
		cmd := exec.Command(crashBinary, "crashtest", where)
		var errs bytes.Buffer
		cmd.Stderr = &errs
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != exitCrash || code == exitUsage || !strings.Contains(errs.String(), "internal error") || !strings.Contains(errs.String(), "crashtest.go") {
			t.Errorf("a panic in the %s goroutine: exit %d, stderr %.300q; want exit %d, the error and its stack", where, code, errs.String(), exitCrash)
		}
	}
	needRoot(t)
	dir, _ := checkpointed(t)
	for _, args := range [][]string{{"inspect", "--dir", dir}, {"inspect", dir, "--json"}, {"inspect", "--json", "--dir", dir}} {
		if out, errs, code := seamless(t, args...); code != exitOK || !strings.Contains(out, "verified") {
			t.Errorf("seamless %v: exit %d, %q %q", args, code, out, errs)
		}
	}
	if _, errs, code := seamless(t, "inspect", "--dir", dir, dir); code != exitUsage {
		t.Errorf("inspect with two directories: exit %d, %q; want a usage error", code, errs)
	}
}

// TestDaemonStartsColdOnBadImage: in the new kernel, a unit whose image
// someone else than root could have written, or whose tree.json is
// malformed, is started cold by the restore daemon, which says why (issue
// 10 findings 5 and 6); nothing of the image is restored.
func TestDaemonStartsColdOnBadImage(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		want   string
	}{
		{"tree.json of a user", func(t *testing.T, dir string) {
			if err := os.Chown(filepath.Join(dir, "tree.json"), 1000, 1000); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 1000"},
		{"null thread", func(t *testing.T, dir string) {
			editTree(t, dir, func(tree map[string]any) { p := process(tree); p["threads"] = append(p["threads"].([]any), nil) })
		}, "thread 1 is null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUnitEnv(t)
			img := t.TempDir()
			pid := u.checkpoint(t, img)
			tt.change(t, filepath.Join(img, u.name, strconv.Itoa(pid)))
			daemon, ready := u.daemon(t, img)
			if !strings.Contains(ready, u.name+" started cold") || !strings.Contains(ready, tt.want) {
				t.Fatalf("daemon readiness %q, want the unit started cold: %s", ready, tt.want)
			}
			if err := daemon.Wait(); err != nil {
				t.Fatalf("daemon: %v", err)
			}
			if alive(pid) {
				t.Fatalf("pid %d is held although its unit starts cold", pid)
			}
		})
	}
}
