package crash

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCall(t *testing.T) {
	if err := Call(func() error { return errors.New("plain") }); err == nil || err.Error() != "plain" {
		t.Fatalf("Call of a failing function = %v", err)
	}
	err := Call(func() error {
		var s []int
		return fmt.Errorf("unreachable %d", s[len(s)]) // out of range: a bug
	})
	var ce *Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "internal error") || !strings.Contains(string(ce.Stack), "crash_test.go") {
		t.Fatalf("Call of a panicking function = %v", err)
	}
}
