package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/seamless-linux/seamless/lab"
)

// cmdVM boots a guest and keeps it running until interrupted, for poking at
// it with `seamless-lab exec`.
func cmdVM(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("vm", flag.ExitOnError)
	noPayload := fs.Bool("no-payload", false, "do not build or install the project's commands")
	keep := fs.Bool("keep", false, "keep the guest's disk overlay when it stops")
	guest := fs.String("guest", lab.DefaultGuest, "guest distribution")
	_ = fs.Parse(args)
	cfg, err := lab.ConfigFor(*guest)
	if err != nil {
		return err
	}
	img, err := lab.Build(ctx, cfg, false, os.Stderr)
	if err != nil {
		return err
	}
	dir, err := lab.NewRunDir(cfg, "vm")
	if err != nil {
		return err
	}
	opt := lab.RunOptions{Out: os.Stderr}
	if !*noPayload {
		wd, _ := os.Getwd()
		opt.Repo, _ = lab.FindRepo(wd)
	}
	if !*keep {
		defer func() { // after QEMU is gone (deferred calls run last-in first-out)
			_ = os.Remove(filepath.Join(dir, "overlay.qcow2"))
			_ = os.Remove(filepath.Join(dir, "payload.img"))
		}()
	}
	g, _, err := lab.BootGuest(ctx, cfg, img, dir, opt)
	if g != nil {
		defer g.VM.Kill()
	}
	if err != nil {
		return err
	}
	_ = g.VM.Agent.Close() // free the agent socket for `seamless-lab exec`
	fmt.Printf("guest running; run dir %s\n", dir)
	fmt.Printf("  seamless-lab exec %s -- uname -a\n", dir)
	fmt.Printf("  memcached: 127.0.0.1:%d   serial console log: %s\n", g.VM.HostPort("memcached"), g.VM.SerialLog)
	fmt.Println("Ctrl-C stops it.")
	select {
	case <-ctx.Done():
	case <-g.VM.Exited():
		return fmt.Errorf("QEMU exited: %v", g.VM.ExitErr())
	}
	return nil
}

// cmdExec runs a command in the guest of a running `seamless-lab vm` and
// exits with its status.
func cmdExec(ctx context.Context, args []string) error {
	if len(args) < 3 || args[1] != "--" {
		usage()
		os.Exit(2)
	}
	vm := &lab.VM{Agent: lab.NewAgent(filepath.Join(args[0], "qga.sock")), SerialLog: filepath.Join(args[0], "serial.log")}
	g := &lab.Guest{VM: vm}
	res, err := g.Run(ctx, strings.Join(args[2:], " "), 30*time.Minute)
	if err != nil {
		return err
	}
	os.Stdout.WriteString(res.Stdout)
	os.Stderr.WriteString(res.Stderr)
	os.Exit(res.ExitCode)
	return nil
}
