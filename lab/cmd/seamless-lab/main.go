// Command seamless-lab builds the seamless QEMU lab and runs its scenarios.
//
//	seamless-lab build [--force] [--guest NAME|all]
//	seamless-lab run [--keep] [--json FILE] [--svg FILE] [--repo DIR | --no-payload] SCENARIO...
//	seamless-lab bench [-n N] [--json FILE] [--svg FILE] [--repo DIR] [SCENARIO...]
//	seamless-lab bench --reports [--json FILE] [--svg FILE] REPORT.json...
//	seamless-lab timeline [-o FILE] REPORT.json...
//	seamless-lab list
//	seamless-lab check SCENARIO...
//	seamless-lab info
//	seamless-lab vm [--keep] [--no-payload] [--guest NAME]
//	seamless-lab exec RUNDIR -- COMMAND...
//
// SCENARIO is a built-in name (see list) or a path to a JSON file.
// Exit status: 0 success, 1 a build, run or check failed, 2 usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/seamless-linux/seamless/lab"
)

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  seamless-lab build [--force] [--guest NAME|all]  build a guest's image (or reuse the cached one)
  seamless-lab run [flags] SCENARIO...  build if needed, then run scenarios
      --keep         keep the run's disk overlay
      --json FILE    also write the report(s) as JSON to FILE
      --svg FILE     draw the runs' timelines side by side into FILE
      --repo DIR     repository whose ./cmd/... are built into the guest (default: found from cwd)
      --no-payload   do not build or install the project's commands
      --guest NAME   run them in this guest instead (bench-criu --guest trixie: against CRIU 4.1.1)
      --pcap         record the guest's traffic (as QEMU's user network sees it) into net.pcap
  seamless-lab bench [flags] [SCENARIO...]  interleaved runs (default seamless-update and kexec-plain):
                                        median and spread of the gap and of each phase
      -n N           rounds (default 3)
      --json FILE    write {"runs": [...], "summary": {...}} (default: bench-TIME.json in the cache)
      --svg FILE     the runs' timelines (default: the JSON file's name with .svg)
      --repo DIR     as for run
      --reports      summarise finished runs (REPORT.json files or run directories) instead
  seamless-lab scale [flags] [SCENARIO...]  the scenarios (default seamless-update and kexec-plain) with
                                        memcached holding each size in a 4 GiB guest: gap against size
      --sizes LIST   MiB of values, comma-separated (default 64,512,1536)
      -n N           rounds (default 1)
      --json FILE    write {"runs": [...]} (default: scale-TIME.json in the cache)
      --svg FILE     the plot (default: the JSON file's name with .svg)
      --repo DIR     as for run
  seamless-lab timeline [-o FILE] REPORT.json...  draw the timelines of finished runs side by side
  seamless-lab list                     list built-in scenarios, with their guests
  seamless-lab check SCENARIO...        parse and validate scenario files
  seamless-lab info                     show the cache and the image of each guest
  seamless-lab vm [--keep] [--no-payload] [--guest NAME]  boot a guest and keep it running (Ctrl-C stops it)
  seamless-lab exec RUNDIR -- CMD...    run a shell command in the guest of a running vm
SCENARIO is a built-in name or a path to a .json file; "all" runs every built-in scenario.
Guests: bookworm (default), trixie. Cache: $SEAMLESS_LAB_CACHE (default /var/cache/seamless-lab).
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "build":
		err = cmdBuild(ctx, os.Args[2:])
	case "run":
		err = cmdRun(ctx, os.Args[2:])
	case "list":
		for _, n := range lab.BuiltinScenarios() {
			sc, err := lab.LoadScenario(n)
			if err != nil {
				fmt.Printf("%-32s (%v)\n", n, err)
				continue
			}
			fmt.Printf("%-32s %s\n", n, guestOf(sc))
		}
	case "check":
		err = cmdCheck(os.Args[2:])
	case "info":
		err = cmdInfo()
	case "vm":
		err = cmdVM(ctx, os.Args[2:])
	case "exec":
		err = cmdExec(ctx, os.Args[2:])
	case "bench":
		err = cmdBench(ctx, os.Args[2:])
	case "scale":
		err = cmdScale(ctx, os.Args[2:])
	case "timeline":
		err = cmdTimeline(os.Args[2:])
	case "-h", "--help", "help":
		usage()
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "seamless-lab: %v\n", err)
		os.Exit(1)
	}
}

func cmdBuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	force := fs.Bool("force", false, "rebuild even if a cached image matches")
	guest := fs.String("guest", lab.DefaultGuest, "guest distribution to build, or all")
	_ = fs.Parse(args)
	guests := []string{*guest}
	if *guest == "all" {
		guests = lab.Guests()
	}
	for _, g := range guests {
		cfg, err := lab.ConfigFor(g)
		if err != nil {
			return err
		}
		if _, err := lab.Build(ctx, cfg, *force, os.Stderr); err != nil {
			return fmt.Errorf("guest %s: %w", g, err)
		}
	}
	return nil
}

// guestOf names a scenario's guest.
func guestOf(sc *lab.Scenario) string {
	if sc.Guest == "" {
		return lab.DefaultGuest
	}
	return sc.Guest
}

func cmdRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	keep := fs.Bool("keep", false, "keep the run's disk overlay")
	jsonOut := fs.String("json", "", "write the reports as JSON to this file")
	svgOut := fs.String("svg", "", "draw the runs' timelines side by side into this SVG file")
	repo := fs.String("repo", "", "repository root whose commands are installed in the guest")
	noPayload := fs.Bool("no-payload", false, "do not build or install the project's commands")
	guest := fs.String("guest", "", "run the scenarios in this guest instead of their own (the run is named SCENARIO-GUEST)")
	capture := fs.Bool("pcap", false, "record the guest's network traffic into net.pcap in the run directory")
	_ = fs.Parse(args)
	if fs.NArg() == 0 {
		usage()
		os.Exit(2)
	}
	refs := fs.Args()
	if len(refs) == 1 && refs[0] == "all" {
		refs = lab.BuiltinScenarios()
	}
	var scs []*lab.Scenario
	for _, ref := range refs {
		sc, err := lab.LoadScenario(ref)
		if err != nil {
			return err
		}
		if *guest != "" && *guest != guestOf(sc) {
			if _, err := lab.ConfigFor(*guest); err != nil {
				return err
			}
			sc.Guest, sc.Name = *guest, sc.Name+"-"+*guest
		}
		scs = append(scs, sc)
	}
	if !*noPayload && *repo == "" {
		wd, _ := os.Getwd()
		r, err := lab.FindRepo(wd)
		if err != nil {
			fmt.Fprintf(os.Stderr, "seamless-lab: warning: %v; the guest gets no seamless build\n", err)
		}
		*repo = r
	}
	if *noPayload {
		*repo = ""
	}
	rr := runner{images: map[string]*lab.Image{}, repo: *repo, keep: *keep, capture: *capture}
	var reports []*lab.Report
	var failed error
	for _, sc := range scs {
		rep, err := rr.run(ctx, sc)
		if rep != nil {
			reports = append(reports, rep)
		}
		failed = errors.Join(failed, err)
	}
	lab.PrintComparison(os.Stdout, reports)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(reports, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", *jsonOut, err)
		}
	}
	if *svgOut != "" {
		if err := writeTimelines(*svgOut, reports, nil); err != nil {
			return errors.Join(failed, err)
		}
	}
	return failed
}

// runner runs scenarios, building (or finding) each guest's image before
// its first scenario.
type runner struct {
	images  map[string]*lab.Image // by lab.Config.ImageHash
	repo    string
	keep    bool
	capture bool // record each run's network traffic
}

// run runs one scenario and prints its report; the error says the run
// failed (the report, when there is one, says why).
func (r *runner) run(ctx context.Context, sc *lab.Scenario) (*lab.Report, error) {
	cfg, err := lab.ConfigFor(sc.Guest)
	if err != nil {
		return nil, err
	}
	// By the image's hash: two guests may share a suite (bookworm and
	// bookworm-services), never an image.
	key := cfg.ImageHash()
	img := r.images[key]
	if img == nil {
		if img, err = lab.Build(ctx, cfg, false, os.Stderr); err != nil {
			return nil, fmt.Errorf("scenario %s: guest %s: %w", sc.Name, cfg.Suite, err)
		}
		r.images[key] = img
	}
	rep, err := lab.RunScenario(ctx, cfg, img, sc, lab.RunOptions{Repo: r.repo, Keep: r.keep, Capture: r.capture, Out: os.Stderr})
	if rep != nil {
		rep.Print(os.Stdout)
	}
	if err != nil && rep == nil {
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
	} else if err != nil { // the report above says why
		return rep, fmt.Errorf("scenario %s failed (report: %s/report.json)", sc.Name, rep.RunDir)
	}
	return rep, nil
}

func cmdCheck(args []string) error {
	if len(args) == 0 {
		usage()
		os.Exit(2)
	}
	for _, ref := range args {
		sc, err := lab.LoadScenario(ref)
		if err != nil {
			return err
		}
		fmt.Printf("%s: ok (%d steps)\n", sc.Name, len(sc.Steps))
	}
	return nil
}

func cmdInfo() error {
	fmt.Printf("cache:       %s\n", lab.DefaultConfig().CacheDir)
	for _, g := range lab.Guests() {
		cfg, err := lab.ConfigFor(g)
		if err != nil {
			return err
		}
		fmt.Printf("\nguest:       %s\n", g)
		fmt.Printf("image hash:  %s\n", cfg.ImageHash())
		fmt.Printf("boot kernel: %s (%s)\n", cfg.BootKernel, cfg.KernelMeta)
		for _, k := range cfg.ExtraKernels {
			fmt.Printf("kept kernel: %s\n", k)
		}
		for _, r := range cfg.Repos {
			fmt.Printf("repository:  /srv/lab-repo/%s (%s): %s\n", r.Name, r.Suite, strings.Join(r.Packages, " "))
		}
		img, err := lab.LoadImage(cfg)
		if err != nil {
			fmt.Printf("image:       not built (%v)\n", err)
			continue
		}
		fmt.Printf("image:       %s (built %s in %.0f s)\n", img.Disk, img.Meta.BuiltAt.Format("2006-01-02 15:04:05"), img.Meta.TotalSeconds)
	}
	return nil
}
