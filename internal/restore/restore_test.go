package restore

import (
	"reflect"
	"testing"

	"github.com/seamless-linux/seamless/internal/mem"
)

func TestDescribeProxies(t *testing.T) {
	tests := []struct {
		name string
		ps   []mem.ProxiedVDSO
		want []string
	}{
		{"none", nil, nil},
		{"one process", []mem.ProxiedVDSO{{PID: 7, Entries: 6}}, []string{"vDSO proxy: 6 entry points redirected"}},
		{"a tree", []mem.ProxiedVDSO{{PID: 7, Entries: 6}, {PID: 8, Entries: 6}, {PID: 9, Entries: 6}},
			[]string{"vDSO proxy: 6 entry points redirected in each of 3 processes"}},
		{"different proxies", []mem.ProxiedVDSO{{PID: 7, Entries: 6}, {PID: 8, Entries: 5}},
			[]string{"vDSO proxy: 6 entry points redirected in process 7", "vDSO proxy: 5 entry points redirected in process 8"}},
	}
	for _, tt := range tests {
		if got := describeProxies(tt.ps); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: describeProxies = %q, want %q", tt.name, got, tt.want)
		}
	}
}
