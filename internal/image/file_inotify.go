package image

import "fmt"

// FileInotify is an inotify instance.
const FileInotify = "inotify"

// Inotify is an inotify instance's watches.
type Inotify struct {
	Watches []InotifyWatch `json:"watches,omitempty"`
}

// InotifyWatch is one inotify watch: the watched path, the event mask and
// the watch descriptor the process knows it by.
type InotifyWatch struct {
	WD   int    `json:"wd"`
	Path string `json:"path"`
	Mask uint32 `json:"mask"`
	// File is the watched file when it was deleted (and held open): the
	// watch goes on the recreated file.
	File *Ref `json:"file,omitempty"`
}

func validateInotify(f *File, _ *checker) error {
	if err := need(f.Inotify, "inotify"); err != nil {
		return err
	}
	for _, w := range f.Inotify.Watches {
		if w.WD < 1 || w.Path == "" {
			return fmt.Errorf("inotify watch %d: bad descriptor or no path", w.WD)
		}
	}
	return nil
}

func linkInotify(f *File, l *links) error {
	for _, w := range f.Inotify.Watches {
		if err := l.ref("inotify watch", w.File); err != nil {
			return err
		}
	}
	return nil
}
