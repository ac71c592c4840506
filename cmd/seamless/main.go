// Command seamless checkpoints and restores process trees and carries
// services across kernel updates.
//
// Engine commands:
//
//	seamless checkpoint --pid PID --dir DIR [--leave-running] [--cgroup PATH]
//	seamless restore --dir DIR [--vdso auto|proxy]
//	seamless inspect [--dir] DIR [--json]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/crash"
	"github.com/seamless-linux/seamless/internal/pid1"
)

// Exit codes, documented in docs/operations.md.
const (
	exitOK      = 0
	exitFailure = 1 // the operation failed; what it started was undone
	exitUsage   = 2 // bad command line
	exitCrash   = 3 // seamless met a bug (a panic); the stack is on stderr
)

func init() {
	// ptrace binds a tracee to the OS thread that attached it: all of the
	// engine's work happens on the main thread.
	runtime.LockOSThread()
}

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"checkpoint", "dump a process tree into an image directory", runCheckpoint},
	{"restore", "rebuild a process tree from an image, with its PIDs", runRestore},
	{"inspect", "verify an image and describe what it holds", runInspect},
	{"plan", "tell which preserved units can be carried across an update, and why not", runPlan},
	{"update", "switch to a newer kernel with kexec, carrying the preserved units", runUpdate},
	{"restorer", "tell whether the restorer initramfs can boot this system, or build it", runRestorer},
	{"status", "show the pending or last update", runStatus},
	{"apply", "apply a pending kernel update once apt and dpkg are done (seamless-apply.service)", runApply},
	{"cancel", "withdraw an armed or scheduled update", runCancel},
	{"kernel-installed", "(run by /etc/kernel/postinst.d/seamless) note a newly installed kernel", runKernelInstalled},
	{"kernel-removed", "(run by /etc/kernel/postrm.d/seamless) withdraw an update to a removed kernel", runKernelRemoved},
	{"apt-hook", "(run by APT after dpkg) act on a newly installed kernel as apply= says", runAptHook},
	{"dnf-hook", "(run by dnf after a transaction) act on a newly installed kernel as apply= says", runDnfHook},
	{"shutdown-checkpoint", "(run by seamless-checkpoint.service) checkpoint at shutdown", runShutdownCheckpoint},
	{"settle-boot", "(run by seamless-checkpoint.service at boot) settle an update this boot did not come from", runSettleBoot},
	{"stage1", "(run by the initramfs) reserve the PIDs and start the restore daemon", runStage1},
	{"restored", "(started by stage1) the restore daemon", runRestored},
	{"anchor", "(ExecStart of a unit being restored) restore the unit or start it cold", runAnchor},
	{"netlock", "(run by seamless-netlock.service) hold or drop the network lock at boot", runNetlock},
	{"generator", "(systemd generator, as seamless-generator) restore units in their sandbox", runGenerator},
	{"dbus-service", "(run by seamless-dbus.service) the system-bus API for updaters", runDBusService},
}

// errUsage marks errors that are the command line's fault.
var errUsage = errors.New("usage")

func main() {
	// PID 1 of the restorer initramfs (package restorer) is this binary.
	if os.Getpid() == 1 && filepath.Base(os.Args[0]) == "init" {
		pid1.Main()
	}
	// Where the restore daemon and the update keep their state: only tests
	// move them.
	contract.SetDirs(os.Getenv("SEAMLESS_RUN_DIR"), os.Getenv("SEAMLESS_STATE_DIR"))
	if filepath.Base(os.Args[0]) == GeneratorName {
		os.Args = append([]string{os.Args[0], "generator"}, os.Args[1:]...)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(stdout, "seamless", version)
		return exitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			// A panic is a bug: reported with its stack and a status of its
			// own, once the engine has undone what it started.
			err := crash.Call(func() error { return c.run(args[1:], stdout, stderr) })
			var ce *crash.Error
			switch {
			case err == nil:
				return exitOK
			case errors.Is(err, flag.ErrHelp):
				return exitOK
			case errors.Is(err, errUsage):
				fmt.Fprintf(stderr, "seamless %s: %v\n", c.name, err)
				return exitUsage
			case errors.As(err, &ce):
				fmt.Fprintf(stderr, "seamless %s: %v\n%s", c.name, err, ce.Stack)
				return exitCrash
			default:
				fmt.Fprintf(stderr, "seamless %s: %v\n", c.name, err)
				return exitFailure
			}
		}
	}
	fmt.Fprintf(stderr, "seamless: unknown command %q (see 'seamless --help')\n", args[0])
	return exitUsage
}

var version = "0.1.0-dev"

func usage(w io.Writer) {
	fmt.Fprint(w, `seamless: carry running services across Linux kernel updates.

Usage: seamless COMMAND [OPTIONS]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-19s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'seamless COMMAND --help' for the options of a command.
Exit status: 0 success, 1 failure (what was started is undone), 2 usage
error, 3 internal error (a bug in seamless: the stack is on stderr).
Documentation: seamless(8); docs/operations.md, docs/image-format.md, docs/limitations.md
(in /usr/share/doc/seamless when installed from the package).
`)
}

// newFlags returns a flag set that prints the command's help to stdout.
func newFlags(name, synopsis, about string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: seamless %s %s\n\n%s\n\nOptions:\n", name, synopsis, about)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags, allowing them before and after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
