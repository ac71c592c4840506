package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seamless-linux/seamless/lab"
)

// cmdScale runs the scenarios with memcached holding each size, in a guest
// large enough for the largest, and plots the gap against the size.
func cmdScale(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("scale", flag.ExitOnError)
	sizesFlag := fs.String("sizes", joinInts(lab.ScaleSizes), "MiB of values in memcached, comma-separated")
	n := fs.Int("n", 1, "rounds: each runs every scenario at every size once")
	jsonOut := fs.String("json", "", "write the runs as JSON to this file")
	svgOut := fs.String("svg", "", "plot the gap against the size into this SVG file")
	repo := fs.String("repo", "", "repository root whose commands are installed in the guest")
	_ = fs.Parse(args)
	sizes, err := parseSizes(*sizesFlag)
	if err != nil {
		return fmt.Errorf("scale: --sizes: %w", err)
	}
	if *n < 1 {
		return fmt.Errorf("scale: -n %d: at least one round", *n)
	}
	if *jsonOut == "" {
		*jsonOut = filepath.Join(lab.DefaultConfig().CacheDir, "scale-"+time.Now().Format("20060102-150405")+".json")
	}
	if *svgOut == "" {
		*svgOut = strings.TrimSuffix(*jsonOut, ".json") + ".svg"
	}
	names := fs.Args()
	if len(names) == 0 {
		names = lab.BenchScenarios
	}
	bases := map[string]*lab.Scenario{}
	for _, ref := range names {
		if bases[ref], err = lab.LoadScenario(ref); err != nil {
			return err
		}
	}
	if *repo, err = repoRoot(*repo); err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	rr := runner{images: map[string]*lab.Image{}, repo: *repo}
	var res lab.ScaleResult
	var failed error
	total := *n * len(sizes) * len(names)
	i := 0
	for round := 0; round < *n; round++ {
		for si, size := range sizes {
			// Alternate which scenario runs first, size after size.
			order := slices.Clone(names)
			if (round+si)%2 == 1 {
				slices.Reverse(order)
			}
			for _, ref := range order {
				i++
				sc, err := lab.Scaled(bases[ref], size)
				if err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "[scale] run %d of %d: %s\n", i, total, sc.Name)
				rep, err := rr.run(ctx, sc)
				failed = errors.Join(failed, err)
				run := lab.ScaleRun{Base: bases[ref].Name, SizeMiB: size}
				if rep != nil {
					run.BenchRun = lab.BenchRunOf(rep)
				} else {
					run.BenchRun = lab.BenchRun{Scenario: sc.Name, Error: fmt.Sprint(err)}
				}
				res.Runs = append(res.Runs, run)
				if ctx.Err() != nil {
					return errors.Join(failed, writeScale(&res, *jsonOut, *svgOut))
				}
			}
		}
	}
	return errors.Join(failed, writeScale(&res, *jsonOut, *svgOut))
}

// writeScale prints the table and writes the JSON and the plot.
func writeScale(res *lab.ScaleResult, jsonOut, svgOut string) error {
	res.Print(os.Stdout)
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		return err
	}
	if err := os.WriteFile(jsonOut, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	fmt.Printf("scale: %s\n", jsonOut)
	buf.Reset()
	if err := lab.WriteScaleSVG(&buf, res); err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	if err := os.WriteFile(svgOut, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	fmt.Printf("scale: %s\n", svgOut)
	return nil
}

// parseSizes parses "64,512,1536".
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a size in MiB", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}
