package restorer

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// tree is what depmod wrote about one kernel's modules: the files by
// module name, their hard dependencies, their soft "pre:" dependencies
// (such as ext4's crc32c), the aliases those name, and the modules built
// into the kernel.
type tree struct {
	dir     string
	file    map[string]string   // module name -> file, relative to dir
	deps    map[string][]string // module name -> module names
	softPre map[string][]string // module name -> aliases or names
	alias   map[string][]string // alias -> module names
	builtin map[string]bool
}

// moduleName is the name of a module file: its base name without the
// .ko suffix (and compression), '-' read as '_', as the kernel does.
func moduleName(file string) string {
	n := filepath.Base(file)
	if i := strings.Index(n, ".ko"); i >= 0 {
		n = n[:i]
	}
	return strings.ReplaceAll(n, "-", "_")
}

// readTree reads dir's modules.dep (which must exist: depmod runs when a
// kernel is installed), and modules.softdep, modules.alias and
// modules.builtin where they exist.
func readTree(dir string) (*tree, error) {
	t := &tree{dir: dir, file: map[string]string{}, deps: map[string][]string{},
		softPre: map[string][]string{}, alias: map[string][]string{}, builtin: map[string]bool{}}
	err := eachLine(filepath.Join(dir, "modules.dep"), func(l string) {
		file, deps, ok := strings.Cut(l, ":")
		if !ok {
			return
		}
		n := moduleName(file)
		t.file[n] = file
		for _, d := range strings.Fields(deps) {
			t.deps[n] = append(t.deps[n], moduleName(d))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("modules of %s: %w (is the kernel installed, and depmod run?)", filepath.Base(dir), err)
	}
	optional := func(name string, f func(string)) error {
		if err := eachLine(filepath.Join(dir, name), f); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	if err := optional("modules.softdep", func(l string) {
		// softdep MODULE pre: A B post: C
		f := strings.Fields(l)
		if len(f) < 3 || f[0] != "softdep" {
			return
		}
		pre := false
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				pre = true
			case "post:":
				pre = false
			default:
				if pre {
					t.softPre[moduleName(f[1])] = append(t.softPre[moduleName(f[1])], w)
				}
			}
		}
	}); err != nil {
		return nil, err
	}
	if err := optional("modules.alias", func(l string) {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "alias" {
			t.alias[f[1]] = append(t.alias[f[1]], moduleName(f[2]))
		}
	}); err != nil {
		return nil, err
	}
	if err := optional("modules.builtin", func(l string) { t.builtin[moduleName(l)] = true }); err != nil {
		return nil, err
	}
	return t, nil
}

// resolve lists the files of names and of everything they need, each
// after what it needs. A name that is built into the kernel needs no
// file; one that is neither a module nor built in is an error. Soft
// dependencies are added when they are modules (an alias may name
// several, such as crc32c's generic and accelerated drivers: all are
// loaded, and those the CPU cannot run fail harmlessly).
func (t *tree) resolve(names []string) ([]string, error) {
	var out []string
	done := map[string]bool{}
	var visit func(n string, soft bool) error
	visit = func(n string, soft bool) error {
		if done[n] {
			return nil
		}
		done[n] = true
		file, ok := t.file[n]
		if !ok {
			if t.builtin[n] || soft {
				return nil
			}
			return fmt.Errorf("module %s is neither in modules.dep nor built in", n)
		}
		for _, a := range t.softPre[n] {
			for _, m := range t.lookup(a) {
				if err := visit(m, true); err != nil {
					return err
				}
			}
		}
		for _, d := range t.deps[n] {
			if err := visit(d, false); err != nil {
				return err
			}
		}
		out = append(out, file)
		return nil
	}
	for _, n := range names {
		if err := visit(moduleName(n), false); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// needs maps each of files to those of files its module depends on, hard
// or soft.
func (t *tree) needs(files []string) map[string][]string {
	in := map[string]bool{}
	for _, f := range files {
		in[f] = true
	}
	out := map[string][]string{}
	for _, f := range files {
		n := moduleName(f)
		var mods []string
		for _, a := range t.softPre[n] {
			mods = append(mods, t.lookup(a)...)
		}
		for _, m := range append(mods, t.deps[n]...) {
			if d := t.file[m]; in[d] && !slices.Contains(out[f], d) {
				out[f] = append(out[f], d)
			}
		}
	}
	return out
}

// lookup is the modules a soft dependency names: a module, or an alias.
func (t *tree) lookup(name string) []string {
	if _, ok := t.file[moduleName(name)]; ok {
		return []string{moduleName(name)}
	}
	return t.alias[name]
}

func eachLine(path string, f func(string)) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			f(l)
		}
	}
	return sc.Err()
}
