package update

import (
	"time"

	"github.com/seamless-linux/seamless/internal/contract"
)

// sample records in st the memory available now.
func sample(st *contract.Status, at string) {
	st.Memory = append(st.Memory, contract.MemSample{At: at, Available: memAvailable()})
}

// watchLowest samples the memory available every 20 ms until the returned
// function is called, which records the lowest sample in st: it catches
// what the steps' samples miss (the kernel's copy of the initrd while
// kexec_file_load runs).
func watchLowest(st *contract.Status) func() {
	stop, done := make(chan struct{}), make(chan int64)
	go func() {
		low := memAvailable()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				done <- low
				return
			case <-t.C:
				low = min(low, memAvailable())
			}
		}
	}()
	return func() {
		close(stop)
		st.Memory = append(st.Memory, contract.MemSample{At: "lowest", Available: <-done})
	}
}
