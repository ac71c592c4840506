package restored

import (
	"strings"
	"testing"
)

func TestReadiness(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Readiness
		want string
	}{
		{"units", Readiness{Summary: "a.service pending; b.service started cold (pid 7 is in use)"}, "ok: a.service pending; b.service started cold (pid 7 is in use)"},
		{"refused", Readiness{Error: "image: no such file\nor directory"}, "error: image: no such file\nor directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := WriteMessage(&b, tc.r); err != nil {
				t.Fatal(err)
			}
			// One line, whatever the reasons hold: stage 1 reads a line.
			if line := b.String(); strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
				t.Fatalf("readiness written as %q", line)
			}
			got, err := ParseReadiness(b.String())
			if err != nil || got != tc.r || got.String() != tc.want {
				t.Errorf("read back as %+v (%q), %v", got, got.String(), err)
			}
		})
	}
	if _, err := ParseReadiness("ok: a.service pending\n"); err == nil {
		t.Error("a readiness line of the old text form was accepted")
	}
}
