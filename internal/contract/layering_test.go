package contract

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/seamless-linux/seamless/internal/"

// The two sides of an update, by package. They share the contract and the
// engine and system packages below them, never each other: the new kernel
// runs none of the old kernel's pipeline, and the old kernel's pipeline
// knows the new kernel only through the contract.
var (
	newKernel = []string{"restored", "anchor", "generator", "reserve", "pid1"}
	oldKernel = []string{"update", "precheck", "kexec", "store", "trigger", "dbusapi", "logind", "restorer"}
	// shared are below both sides and import neither: kmod drives the kmod
	// store's module for update (take the memory, seal it) and for
	// restored (mount the image, give the memory back).
	shared = []string{"contract", "kmod"}
)

// TestSidesDoNotImportEachOther fails when a package of one side imports,
// directly or not, a package of the other, and names the chain.
func TestSidesDoNotImportEachOther(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		imports[f[0]] = f[1:]
	}
	both := append(append([]string{}, newKernel...), oldKernel...)
	for _, sides := range [][2][]string{{newKernel, oldKernel}, {oldKernel, newKernel}, {shared, both}} {
		for _, from := range sides[0] {
			if _, ok := imports[module+from]; !ok {
				t.Fatalf("go list does not know %s", module+from)
			}
			for _, to := range sides[1] {
				if chain := importChain(imports, module+from, module+to); chain != nil {
					t.Errorf("%s imports %s: %s", from, to, strings.Join(chain, " -> "))
				}
			}
		}
	}
}

// importChain returns a chain of imports from package from to package to,
// or nil if from does not depend on to.
func importChain(imports map[string][]string, from, to string) []string {
	via := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			var chain []string
			for ; p != ""; p = via[p] {
				chain = append([]string{strings.TrimPrefix(p, module)}, chain...)
			}
			return chain
		}
		for _, q := range imports[p] {
			if _, seen := via[q]; !seen {
				via[q] = p
				queue = append(queue, q)
			}
		}
	}
	return nil
}
