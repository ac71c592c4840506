package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/seamless-linux/seamless/lab"
)

// cmdBench runs N interleaved rounds of the scenarios on the same image and
// summarises the gap and every phase of their timelines.
func cmdBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	n := fs.Int("n", 3, "rounds: each runs every scenario once")
	jsonOut := fs.String("json", "", "write the runs and their summary as JSON to this file")
	svgOut := fs.String("svg", "", "draw the runs' timelines into this SVG file")
	repo := fs.String("repo", "", "repository root whose commands are installed in the guest")
	fromReports := fs.Bool("reports", false, "summarise finished runs (report.json files or run directories) instead of running")
	_ = fs.Parse(args)
	if *n < 1 {
		return fmt.Errorf("bench: -n %d: at least one round", *n)
	}
	if *jsonOut == "" {
		*jsonOut = filepath.Join(lab.DefaultConfig().CacheDir, "bench-"+time.Now().Format("20060102-150405")+".json")
	}
	if *svgOut == "" {
		*svgOut = strings.TrimSuffix(*jsonOut, ".json") + ".svg"
	}
	if *fromReports {
		if fs.NArg() == 0 {
			return errors.New("bench --reports: name the runs' report.json files or directories")
		}
		var reports []*lab.Report
		for _, p := range fs.Args() {
			rep, err := loadReport(p)
			if err != nil {
				return err
			}
			reports = append(reports, rep)
		}
		return writeBench(reports, nil, *jsonOut, *svgOut)
	}
	names := fs.Args()
	if len(names) == 0 {
		names = lab.BenchScenarios
	}
	scs := map[string]*lab.Scenario{}
	for _, ref := range names {
		sc, err := lab.LoadScenario(ref)
		if err != nil {
			return err
		}
		scs[ref] = sc
	}
	r, err := repoRoot(*repo)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	*repo = r
	rr := runner{images: map[string]*lab.Image{}, repo: *repo}
	var reports []*lab.Report
	var lost []lab.BenchRun
	var failed error
	for i, ref := range lab.BenchOrder(names, *n) {
		fmt.Fprintf(os.Stderr, "[bench] run %d of %d: %s\n", i+1, *n*len(names), ref)
		rep, err := rr.run(ctx, scs[ref])
		failed = errors.Join(failed, err)
		if rep == nil {
			lost = append(lost, lab.BenchRun{Scenario: scs[ref].Name, Error: fmt.Sprint(err), Phases: map[string]int64{}, Points: map[string]int64{}})
			if ctx.Err() != nil {
				break
			}
			continue
		}
		reports = append(reports, rep)
	}
	return errors.Join(failed, writeBench(reports, lost, *jsonOut, *svgOut))
}

// repoRoot is the repository whose commands go into the guest: given, or
// the one around the working directory.
func repoRoot(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	wd, _ := os.Getwd()
	r, err := lab.FindRepo(wd)
	if err != nil {
		return "", fmt.Errorf("%w (give --repo)", err)
	}
	return r, nil
}

// writeBench summarises the runs (and those that left no report), prints
// the table and writes the JSON and the SVG of their timelines.
func writeBench(reports []*lab.Report, lost []lab.BenchRun, jsonOut, svgOut string) error {
	var res lab.BenchResult
	var labels []string
	count := map[string]int{}
	for _, rep := range reports {
		res.Runs = append(res.Runs, lab.BenchRunOf(rep))
		count[rep.Scenario]++
		labels = append(labels, fmt.Sprintf("%s #%d", rep.Scenario, count[rep.Scenario]))
	}
	res.Runs = append(res.Runs, lost...)
	res.Summary = lab.Summarize(res.Runs)
	res.Print(os.Stdout)
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		return err
	}
	if err := os.WriteFile(jsonOut, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	fmt.Printf("bench: %s\n", jsonOut)
	if len(reports) > 0 {
		if err := writeTimelines(svgOut, reports, labels); err != nil {
			return err
		}
		fmt.Printf("bench: %s\n", svgOut)
	}
	return nil
}

// cmdTimeline draws the timelines of finished runs from their report.json
// (and serial.log, when it is still there) side by side.
func cmdTimeline(args []string) error {
	fs := flag.NewFlagSet("timeline", flag.ExitOnError)
	out := fs.String("o", "timeline.svg", "SVG file to write")
	_ = fs.Parse(args)
	if fs.NArg() == 0 {
		usage()
		os.Exit(2)
	}
	var reps []*lab.Report
	for _, p := range fs.Args() {
		rep, err := loadReport(p)
		if err != nil {
			return err
		}
		reps = append(reps, rep)
	}
	if err := writeTimelines(*out, reps, nil); err != nil {
		return err
	}
	fmt.Println(*out)
	return nil
}

// loadReport reads a finished run's report.json (p is the file or its run
// directory) and rebuilds its timeline from the serial log when that is
// still there.
func loadReport(p string) (*lab.Report, error) {
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		p = filepath.Join(p, "report.json")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var rep lab.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if serial, err := os.ReadFile(rep.SerialLog); err == nil {
		rep.Timeline = lab.BuildTimeline(&rep, serial)
	}
	if rep.Timeline == nil {
		return nil, fmt.Errorf("%s: no timeline and no serial log to build one from", p)
	}
	return &rep, nil
}

// writeTimelines draws the reports' timelines, one lane each, labelled with
// labels when given.
func writeTimelines(path string, reps []*lab.Report, labels []string) error {
	var tls []*lab.Timeline
	for i, r := range reps {
		if r.Timeline == nil {
			continue
		}
		tl := *r.Timeline
		if i < len(labels) {
			tl.Scenario = labels[i]
		}
		tls = append(tls, &tl)
	}
	if len(tls) == 0 {
		return fmt.Errorf("%s: no run has a timeline", path)
	}
	var buf bytes.Buffer
	if err := lab.WriteTimelineSVG(&buf, tls); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
