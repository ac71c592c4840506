package crash

import (
	"errors"
	"strings"
	"testing"
)

func TestCall(t *testing.T) {
	if err := Call(func() error { return errors.New("plain") }); err == nil || err.Error() != "plain" {
		t.Fatalf("Call of a failing function = %v", err)
	}
	err := Call(func() error {
		var m map[string]int
		m["x"] = 1 // a nil map: a bug
		return nil
	})
	var ce *Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "internal error") || !strings.Contains(string(ce.Stack), "crash_test.go") {
		t.Fatalf("Call of a panicking function = %v", err)
	}
}
