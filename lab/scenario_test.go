package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBuiltinScenariosParse(t *testing.T) {
	names := BuiltinScenarios()
	if len(names) < 2 {
		t.Fatalf("built-in scenarios = %v", names)
	}
	for _, n := range names {
		sc, err := LoadScenario(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if sc.Name != n {
			t.Errorf("scenario file %s.json is named %q", n, sc.Name)
		}
		if p := sc.PayloadScript; p != "" {
			if _, err := os.Stat(filepath.Join("..", p)); err != nil {
				t.Errorf("%s: payload_script: %v", n, err)
			}
		}
	}
}

func TestParseScenarioDefaults(t *testing.T) {
	sc, err := ParseScenario([]byte(`{"name":"x","steps":[{"phase":"a","guest":"true"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Timeout.Duration != 10*time.Minute || sc.Steps[0].Timeout.Duration != 2*time.Minute {
		t.Errorf("timeouts = %v, %v", sc.Timeout, sc.Steps[0].Timeout)
	}
	if sc.Memcached.Keys != 100000 || sc.Memcached.ValueSize != 64 {
		t.Errorf("memcached = %+v", sc.Memcached)
	}
}

func TestParseScenarioErrors(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"steps":[{"phase":"a","guest":"true"}]}`, "name is required"},
		{`{"name":"x"}`, "no steps"},
		{`{"name":"x","steps":[{"guest":"true"}]}`, "phase is required"},
		{`{"name":"x","steps":[{"phase":"a"}]}`, "exactly one"},
		{`{"name":"x","steps":[{"phase":"a","guest":"true","host":"sleep"}]}`, "exactly one"},
		{`{"name":"x","steps":[{"phase":"a","host":"dance"}]}`, "unknown host action"},
		{`{"name":"x","steps":[{"phase":"a","host":"sleep"}]}`, "needs a duration"},
		{`{"name":"x","steps":[{"phase":"a","host":"probe-stop"}]}`, "without probe-start"},
		{`{"name":"x","steps":[{"phase":"a","guest":"true","timeout":"soon"}]}`, "bad duration"},
		{`{"name":"x","stepz":[]}`, "unknown field"},
		{`{"name":"x","steps":[{"phase":"a","host":"sleep","duration":"1s","reboots":true}]}`, "guest steps only"},
		{`{"name":"x","guest":"sid","steps":[{"phase":"a","guest":"true"}]}`, `no lab guest "sid"`},
		{`{"name":"x","payload_script":"/etc/x.sh","steps":[{"phase":"a","guest":"true"}]}`, "inside the repository"},
		{`{"name":"x","payload_script":"../x.sh","steps":[{"phase":"a","guest":"true"}]}`, "inside the repository"},
		{`{"name":"x","payload_script":"..","steps":[{"phase":"a","guest":"true"}]}`, "inside the repository"},
		{`{"name":"x","payload_script":"rpm/../../x.sh","steps":[{"phase":"a","guest":"true"}]}`, "inside the repository"},
	} {
		_, err := ParseScenario([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.json, err, tc.want)
		}
	}
}

func TestKernelRelease(t *testing.T) {
	if got := KernelRelease("linux-image-6.12.117+deb12-amd64=6.12.117-1~deb12u1"); got != "6.12.117+deb12-amd64" {
		t.Errorf("got %q", got)
	}
}

func TestVersionShort(t *testing.T) {
	v := "Linux version 6.1.0-47-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.170-3 (2026-05-08)"
	if got := versionShort(v); got != "Debian 6.1.170-3" {
		t.Errorf("got %q", got)
	}
}

func TestImageHashChangesWithInputs(t *testing.T) {
	a := DefaultConfig()
	b := DefaultConfig()
	if a.ImageHash() != b.ImageHash() {
		t.Fatal("hash not stable")
	}
	b.Packages = append(append([]string{}, b.Packages...), "vim")
	if a.ImageHash() == b.ImageHash() {
		t.Error("package list does not change the hash")
	}
	c := DefaultConfig()
	c.CacheDir, c.MemoryMB = "/elsewhere", 4096
	if a.ImageHash() != c.ImageHash() {
		t.Error("cache dir or memory changes the hash")
	}
}

func TestTestdataScenariosParse(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("testdata scenarios: %v %v", files, err)
	}
	for _, f := range files {
		if _, err := LoadScenario(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestPayloadSize(t *testing.T) {
	for _, tc := range []struct {
		files []int64 // sizes of the files in the payload
		want  int64   // MiB
	}{
		{nil, 256},
		{[]int64{100 << 20}, 256},
		{[]int64{200 << 20, 100 << 20}, 300*5/4 + 64},
	} {
		dir := t.TempDir()
		for i, n := range tc.files {
			f, err := os.Create(filepath.Join(dir, fmt.Sprint(i)))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(n); err != nil { // sparse: no disk used
				t.Fatal(err)
			}
			f.Close()
		}
		if got, err := payloadSize(dir); err != nil || got != tc.want {
			t.Errorf("payloadSize(%v) = %d, %v; want %d", tc.files, got, err, tc.want)
		}
	}
}
