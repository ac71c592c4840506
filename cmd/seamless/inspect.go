package main

import (
	"fmt"
	"io"

	"github.com/seamless-linux/seamless/internal/bytesize"
	"github.com/seamless-linux/seamless/internal/image"
)

func runInspect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("inspect", "[--dir] DIR [--json]",
		`Verify every file of the image in DIR against its manifest and describe
the process tree it holds: processes, threads, memory and files.`, stdout)
	asJSON := fs.Bool("json", false, "print a machine-readable description")
	dir := fs.String("dir", "", "image `DIR`ectory (or give it as the argument)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *dir != "" {
		pos = append(pos, *dir)
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: need exactly one image directory", errUsage)
	}
	im, err := image.Open(pos[0])
	if err != nil {
		return err
	}
	defer im.Close()
	s := summarize(im)
	if *asJSON {
		return writeJSON(stdout, s)
	}
	printSummary(stdout, s)
	return nil
}

// summary is what inspect reports.
type summary struct {
	Dir       string           `json:"dir"`
	Format    int              `json:"format_version"`
	Kernel    string           `json:"kernel"`
	Verified  bool             `json:"verified"`
	Bytes     int64            `json:"bytes"`
	Files     int              `json:"files"`
	Root      int              `json:"root"`
	Processes []processSummary `json:"processes"`
	Shared    int              `json:"shared_memory_objects"`
	Tree      *image.Tree      `json:"tree"`
	Kinds     map[string]int   `json:"open_files_by_kind"`
	_         struct{}         `json:"-"`
}

type processSummary struct {
	PID       int    `json:"pid"`
	PPID      int    `json:"ppid"`
	PGID      int    `json:"pgid"`
	SID       int    `json:"sid"`
	Comm      string `json:"comm"`
	Exe       string `json:"exe"`
	Threads   []int  `json:"threads"`
	Mappings  int    `json:"mappings"`
	PageBytes uint64 `json:"page_bytes"`
	FDs       int    `json:"fds"`
}

func summarize(im *image.Image) *summary {
	s := &summary{Dir: im.Dir, Format: im.Format, Kernel: im.Kernel, Verified: true,
		Bytes: im.Size(), Files: len(im.Entries), Root: im.Tree.Root, Shared: len(im.Tree.SharedMemory),
		Tree: im.Tree, Kinds: map[string]int{}}
	for _, p := range im.Tree.Processes {
		ps := processSummary{PID: p.PID, PPID: p.PPID, PGID: p.PGID, SID: p.SID, Comm: p.Comm,
			Mappings: len(p.Mappings), FDs: len(p.FDs)}
		if p.Exe != nil {
			ps.Exe = p.Exe.Path
		}
		for _, t := range p.Threads {
			ps.Threads = append(ps.Threads, t.TID)
		}
		for _, m := range p.Mappings {
			for _, r := range m.Runs {
				ps.PageBytes += r.Pages * 4096
			}
		}
		s.Processes = append(s.Processes, ps)
	}
	for _, f := range im.Tree.Files {
		s.Kinds[f.Kind]++
	}
	return s
}

func printSummary(w io.Writer, s *summary) {
	fmt.Fprintf(w, "image %s: format %d, verified (%d files, %s)\n", s.Dir, s.Format, s.Files, bytesize.Format(s.Bytes))
	fmt.Fprintf(w, "checkpointed on kernel %s\n", s.Kernel)
	fmt.Fprintf(w, "%d processes, root %d:\n", len(s.Processes), s.Root)
	for _, p := range s.Processes {
		fmt.Fprintf(w, "  pid %d (%s) ppid %d pgid %d sid %d: %d threads %v, %d mappings, %s of pages, %d fds\n",
			p.PID, p.Comm, p.PPID, p.PGID, p.SID, len(p.Threads), p.Threads, p.Mappings, bytesize.Format(int64(p.PageBytes)), p.FDs)
		if p.Exe != "" {
			fmt.Fprintf(w, "    exe %s\n", p.Exe)
		}
	}
	if len(s.Kinds) > 0 {
		fmt.Fprintf(w, "open files:")
		for k, n := range s.Kinds {
			fmt.Fprintf(w, " %s=%d", k, n)
		}
		fmt.Fprintln(w)
	}
	if s.Shared > 0 {
		fmt.Fprintf(w, "%d shared memory objects\n", s.Shared)
	}
}
