package image

// FileSignalfd is a signalfd (signalfd(2)).
const FileSignalfd = "signalfd"

// Signalfd is the set of signals a signalfd reads.
type Signalfd struct {
	Sigmask uint64 `json:"sigmask"`
}

func validateSignalfd(f *File, _ *checker) error { return need(f.Signalfd, "signalfd") }
