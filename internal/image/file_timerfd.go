package image

import "errors"

// FileTimerfd is a timerfd (timerfd_create(2)).
const FileTimerfd = "timerfd"

// Timer is a timerfd: its clock, the time left until it fires next (it is
// re-armed relative to the restore), the interval, and the expirations that
// were not read yet.
type Timer struct {
	Clock       int    `json:"clock"`
	ValueNs     int64  `json:"value_ns"`
	IntervalNs  int64  `json:"interval_ns"`
	Ticks       uint64 `json:"ticks"`
	SettimeFlag int    `json:"settime_flags"`
}

func validateTimerfd(f *File, _ *checker) error {
	if err := need(f.Timer, "timer"); err != nil {
		return err
	}
	if f.Timer.ValueNs < 0 || f.Timer.IntervalNs < 0 {
		return errors.New("a timer with a negative time")
	}
	return nil
}
