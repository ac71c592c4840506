// Package crash turns a panic, a bug in seamless, into an error that
// carries the panic's stack: the code around it can then undo what it
// started (let a stopped tree go, kill a half-restored one, thaw a cgroup)
// and the command report it, with an exit status of its own, instead of
// the Go runtime ending the process with the status of a usage error.
package crash

import (
	"fmt"
	"runtime/debug"
)

// Error is a recovered panic.
type Error struct {
	Value any
	Stack []byte
}

func (e *Error) Error() string {
	return fmt.Sprintf("internal error (a bug in seamless, please report it): %v", e.Value)
}

// Recover, deferred, turns a panic of the deferring function into an
// *Error stored in *err:
//
//	func f() (err error) {
//		defer crash.Recover(&err)
//		...
//	}
func Recover(err *error) {
	if p := recover(); p != nil {
		*err = &Error{Value: p, Stack: debug.Stack()}
	}
}

// Call runs fn and returns its error, or the panic it raised as an *Error.
func Call(fn func() error) (err error) {
	defer Recover(&err)
	return fn()
}
