package task

import (
	"os"
	"strings"
	"testing"
)

func TestCheckLabel(t *testing.T) {
	for _, tc := range []struct {
		label string
		ok    bool
	}{
		{"", true},           // no security module labels tasks
		{"unconfined", true}, // AppArmor, no profile
		{"/usr/bin/memcached (enforce)", false},
		{"memcached (complain)", false},
		{"system_u:system_r:memcached_t:s0", false},
		{"unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023", false},
	} {
		err := checkLabel(10, 11, tc.label)
		if (err == nil) != tc.ok {
			t.Errorf("checkLabel(%q) = %v, want ok %v", tc.label, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), tc.label) {
			t.Errorf("checkLabel(%q) = %v: the label is not named", tc.label, err)
		}
	}
}

// TestLabelOfSelf reads this process's own label: whatever the machine's
// security modules, it must read without an error.
func TestLabelOfSelf(t *testing.T) {
	pid := os.Getpid()
	if _, err := Label(pid, pid); err != nil {
		t.Fatal(err)
	}
}
