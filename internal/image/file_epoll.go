package image

import "fmt"

// FileEpoll is an epoll instance.
const FileEpoll = "epoll"

// Epoll is an epoll instance's registrations.
type Epoll struct {
	Watches []EpollWatch `json:"watches,omitempty"`
}

// EpollWatch is one epoll registration: the fd number in the owning process,
// the event mask and the user data.
type EpollWatch struct {
	FD     int    `json:"fd"`
	Events uint32 `json:"events"`
	Data   uint64 `json:"data"`
	// File is the open file description watched. The watch is registered
	// under the number FD (which the process may have closed since, or
	// given to another file), as the kernel keys watches by file and number.
	// 0 in older images: the file open at FD.
	File int `json:"file,omitempty"`
}

func validateEpoll(f *File, _ *checker) error {
	if err := need(f.Epoll, "epoll"); err != nil {
		return err
	}
	for _, w := range f.Epoll.Watches {
		if w.FD < 0 || w.FD >= MaxFD {
			return fmt.Errorf("epoll watch of bad fd %d", w.FD)
		}
	}
	return nil
}

func linkEpoll(f *File, l *links) error {
	for _, w := range f.Epoll.Watches {
		if w.File != 0 && !l.files[w.File] {
			return fmt.Errorf("epoll watch of fd %d refers to unknown file %d", w.FD, w.File)
		}
	}
	return nil
}
