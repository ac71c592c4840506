package image

// Pipes: an anonymous pipe, and a named one (a FIFO, which also has a Ref).
const (
	FilePipe = "pipe"
	FileFIFO = "fifo"
)

// Pipe is one end of a pipe: the pipe's identity, which end, its capacity
// and the bytes buffered in it when the tree held a read end.
type Pipe struct {
	Inode    uint64 `json:"inode"`
	Write    bool   `json:"write"`
	Capacity int    `json:"capacity"`
	Data     []byte `json:"data,omitempty"`
	// External is set when a process outside the tree held the pipe too.
	External bool `json:"external,omitempty"`
}

func validatePipe(f *File, _ *checker) error { return need(f.Pipe, "pipe") }
