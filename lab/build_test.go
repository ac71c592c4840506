package lab

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestPruneImagesKeepsOnePerGuest(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	// name, suite ("" for an image from before suites were recorded), age
	images := []struct {
		name, suite string
		age         time.Duration
	}{
		{"new-bookworm", "bookworm", 0},
		{"bookworm-1", "bookworm", 1 * time.Hour},
		{"bookworm-2", "", 2 * time.Hour},
		{"trixie-1", "trixie", 3 * time.Hour},
		{"trixie-2", "trixie", 4 * time.Hour},
	}
	for _, im := range images {
		d := filepath.Join(dir, im.name)
		os.MkdirAll(d, 0o700)
		b, _ := json.Marshal(ImageMeta{Config: Config{Suite: im.suite}})
		os.WriteFile(filepath.Join(d, "meta.json"), b, 0o600)
		os.Chtimes(d, now.Add(-im.age), now.Add(-im.age))
	}
	os.MkdirAll(filepath.Join(dir, "building.tmp"), 0o700) // another build in progress
	var log strings.Builder
	pruneImages(dir, "new-bookworm", &log)
	ents, _ := os.ReadDir(dir)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	sort.Strings(left)
	if want := []string{"bookworm-1", "building.tmp", "new-bookworm", "trixie-1"}; !reflect.DeepEqual(left, want) {
		t.Fatalf("left %v, want %v\n%s", left, want, log.String())
	}
}

func TestReposEnv(t *testing.T) {
	got := reposEnv([]Repo{
		{Name: "security", Origin: "Debian", Label: "Debian-Security", Suite: "trixie-security", Packages: []string{"linux-image-amd64=6.12.118-1"}},
		{Name: "backports", Origin: "Debian Backports", Label: "Debian Backports", Suite: "trixie-backports", NotAutomatic: true, Packages: []string{"a=1", "b=2"}},
	})
	want := "security|Debian|Debian-Security|trixie-security|0|linux-image-amd64=6.12.118-1\n" +
		"backports|Debian Backports|Debian Backports|trixie-backports|1|a=1 b=2\n"
	if got != want {
		t.Errorf("reposEnv = %q, want %q", got, want)
	}
}

func TestGuestConfigs(t *testing.T) {
	seen := map[string]bool{}
	for _, g := range Guests() {
		c, err := ConfigFor(g)
		if err != nil {
			t.Fatal(err)
		}
		// A guest is named for its suite, or suite-variant (bookworm-services).
		if suite, _, _ := strings.Cut(g, "-"); c.Suite != suite || c.BootKernel == "" || !strings.HasPrefix(c.KernelMeta, "linux-image-amd64=") || len(c.ExtraKernels) == 0 {
			t.Errorf("guest %s: %+v", g, c)
		}
		if seen[c.ImageHash()] {
			t.Errorf("guest %s shares an image hash", g)
		}
		seen[c.ImageHash()] = true
		for _, r := range c.Repos {
			if strings.ContainsAny(r.Name+r.Origin+r.Label+r.Suite+strings.Join(r.Packages, ""), "|\n") {
				t.Errorf("guest %s repo %s: a field holds a separator of reposEnv", g, r.Name)
			}
		}
	}
	if _, err := ConfigFor("sid"); err == nil {
		t.Error("ConfigFor(sid) = nil error")
	}
}
