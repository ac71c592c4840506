package main

import (
	"slices"
	"testing"

	"github.com/seamless-linux/seamless/internal/image"
)

// TestImageKnowsTheKinds: the image knows the kinds of open file
// description only through internal/files' registration, and the restore
// daemon, which validates images, does not import internal/files itself:
// this binary must link it, or every image with a descriptor would be
// refused. (This test imports nothing that would register them.)
func TestImageKnowsTheKinds(t *testing.T) {
	kinds := image.FileKinds()
	for _, k := range []string{"regular", "pipe", "pty-master", image.FileSocket} {
		if !slices.Contains(kinds, k) {
			t.Errorf("the image does not know the kind %q (it knows %v)", k, kinds)
		}
	}
}
