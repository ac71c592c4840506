package restored

import (
	"os/user"
	"strconv"
	"testing"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/units"
)

func TestRecordVouches(t *testing.T) {
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody here")
	}
	nobodyUID, _ := strconv.Atoi(nobody.Uid)
	const cg = "/system.slice/memcached.service"
	tests := []struct {
		name       string
		recordCG   string
		recordUser string
		askerCG    string
		askerUID   int
		want       bool
	}{
		{"root unit, its cgroup", cg, "", cg, 0, true},
		{"user by name", cg, "nobody", cg, nobodyUID, true},
		{"user by number", cg, nobody.Uid, cg, nobodyUID, true},
		{"another user", cg, "nobody", cg, 0, false},
		{"root unit, a user asks", cg, "", cg, nobodyUID, false},
		{"same name elsewhere", cg, "", "/user.slice/user-1000.slice/memcached.service", 0, false},
		{"below the unit", cg, "", cg + "/sub", 0, false},
		{"no record", "", "", cg, 0, false},
		{"unknown user", cg, "no-such-user-seamless", cg, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &contract.UnitState{Unit: "memcached.service", Start: units.Start{ControlGroup: tt.recordCG, User: tt.recordUser}}
			if got := recordVouches(u, tt.askerCG, tt.askerUID); got != tt.want {
				t.Errorf("recordVouches(record %q/%q, asker %q/%d) = %v, want %v", tt.recordCG, tt.recordUser, tt.askerCG, tt.askerUID, got, tt.want)
			}
		})
	}
}
