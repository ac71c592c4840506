package image

// FileEventfd is an eventfd (eventfd(2)).
const FileEventfd = "eventfd"

// Eventfd is an eventfd's counter (its semaphore mode is in File.Flags).
type Eventfd struct {
	Counter uint64 `json:"counter"`
}

func validateEventfd(f *File, _ *checker) error { return need(f.Eventfd, "eventfd") }
