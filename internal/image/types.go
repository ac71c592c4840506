package image

// Tree is the description of a checkpointed process tree, stored as
// tree.json. Every field is something the system-call API or procfs
// exposes, never a kernel structure, so that a newer kernel can restore it.
type Tree struct {
	// Root is the PID of the process the checkpoint was asked for.
	Root int `json:"root"`
	// Processes lists every process of the tree, parents before children.
	Processes []*Process `json:"processes"`
	// Files are the open file descriptions, shared by fds across the tree.
	Files []*File `json:"files"`
	// SharedMemory are shared anonymous memory objects (MAP_SHARED|MAP_ANONYMOUS,
	// memfd, deleted files) whose contents are stored once.
	SharedMemory []*SharedMemory `json:"shared_memory,omitempty"`
	// Ptys are the pseudo-terminals whose master the tree holds.
	Ptys []*Pty `json:"ptys,omitempty"`
	// SysV are the System V IPC objects the tree used.
	SysV *SysV `json:"sysv,omitempty"`
	// Clocks are the clocks as the tree saw them at checkpoint (absent in
	// older images: the tree then comes back on the restoring kernel's
	// clocks).
	Clocks *Clocks `json:"clocks,omitempty"`
}

// Clocks are three clocks read at one moment while the tree was stopped,
// in nanoseconds: CLOCK_MONOTONIC and CLOCK_BOOTTIME as its processes saw
// them (with the offsets of their time namespace), and CLOCK_REALTIME,
// which measures the pause until the restore.
type Clocks struct {
	MonotonicNs int64 `json:"monotonic_ns"`
	BoottimeNs  int64 `json:"boottime_ns"`
	RealtimeNs  int64 `json:"realtime_ns"`
}

// Pty is a pseudo-terminal pair: its index (/dev/pts/N), the terminal
// settings as the termios ioctl ABI lays them out, the window size, packet
// mode, and the bytes queued in each direction at checkpoint.
type Pty struct {
	Index   int    `json:"index"`
	Termios []byte `json:"termios"`
	Winsize []byte `json:"winsize"`
	Packet  bool   `json:"packet,omitempty"`
	Locked  bool   `json:"locked,omitempty"`
	// Input was written to the master and not yet read from the slave;
	// Output was written to the slave and not yet read from the master.
	Input  []byte `json:"input,omitempty"`
	Output []byte `json:"output,omitempty"`
	// Owner is the owner and mode of /dev/pts/INDEX (absent in older
	// images: the restorer's, 0620).
	Owner *PtyOwner `json:"owner,omitempty"`
}

// PtyOwner is the owner, group and permission bits of a pty slave node.
type PtyOwner struct {
	UID  uint32 `json:"uid"`
	GID  uint32 `json:"gid"`
	Mode uint32 `json:"mode"`
}

// Process is one process: its identity, threads, memory, files and the
// per-process attributes of its task.
type Process struct {
	PID        int `json:"pid"`
	PPID       int `json:"ppid"`
	PGID       int `json:"pgid"`
	SID        int `json:"sid"`
	ExitSignal int `json:"exit_signal"`
	// Zombie marks a process that had exited but was not reaped yet; only
	// its identity and WaitStatus (as waitpid(2) reports it) are kept.
	Zombie     bool `json:"zombie,omitempty"`
	WaitStatus int  `json:"wait_status,omitempty"`
	// Ctty is the index of the pseudo-terminal (in Tree.Ptys) that is this
	// session leader's controlling terminal, or -1; Tpgid is its
	// foreground process group.
	Ctty  int `json:"ctty"`
	Tpgid int `json:"tpgid,omitempty"`
	// Subreaper is prctl(PR_GET_CHILD_SUBREAPER).
	Subreaper bool   `json:"child_subreaper,omitempty"`
	Comm      string `json:"comm"`
	Exe       *Ref   `json:"exe,omitempty"`
	Cwd       string `json:"cwd"`
	Root      string `json:"root"`
	Umask     uint32 `json:"umask"`
	// Personality is the persona from personality(2).
	Personality uint64 `json:"personality"`
	// VDSO are the vDSO's function entry points (offsets from its start),
	// which the process may have cached.
	VDSO map[string]uint64 `json:"vdso,omitempty"`
	// Dumpable is prctl(PR_GET_DUMPABLE).
	Dumpable   int       `json:"dumpable"`
	Rlimits    []Rlimit  `json:"rlimits"`
	MM         MM        `json:"mm"`
	Sigactions []Sigact  `json:"sigactions"`
	Pending    []Siginfo `json:"pending_shared,omitempty"`
	// Itimers are ITIMER_REAL, ITIMER_VIRTUAL and ITIMER_PROF.
	Itimers [3]Itimer `json:"itimers"`
	// Timers are the POSIX timers of timer_create(2).
	Timers   []PosixTimer `json:"posix_timers,omitempty"`
	Threads  []*Thread    `json:"threads"`
	Mappings []*Mapping   `json:"mappings"`
	FDs      []FD         `json:"fds"`
	// FDTable is the PID of the earlier process of the tree whose descriptor
	// table this process shares (clone with CLONE_FILES); 0 when the table
	// is its own. FDs then lists the same descriptors as that process's.
	FDTable int `json:"fd_table,omitempty"`
	// FSTable is the same for the root, working directory and umask
	// (clone with CLONE_FS).
	FSTable int `json:"fs_table,omitempty"`
	// CwdFile is the working directory when it cannot be found by path (a
	// deleted directory): it is recreated like a deleted file.
	CwdFile *Ref `json:"cwd_file,omitempty"`
	// Pages names the image file holding this process's private pages.
	Pages string `json:"pages"`
	// ParentTID is the thread of the parent that created this process (the
	// one whose /proc/PID/task/TID/children lists it): a parent-death signal
	// follows that thread. Absent: the parent's main thread.
	ParentTID int `json:"parent_tid,omitempty"`
	// Attrs are the kernel's per-process settings that nothing else shows
	// (see attrs.go); absent in older images.
	Attrs *ProcessAttrs `json:"attrs,omitempty"`
}

// Thread is one thread (task) and its CPU and signal state.
type Thread struct {
	TID  int    `json:"tid"`
	Comm string `json:"comm"`
	Regs Regs   `json:"regs"`
	// Xstate is the XSAVE area as the CPU defines it (x87, SSE, AVX, ...).
	Xstate     []byte    `json:"xstate"`
	Sigmask    uint64    `json:"sigmask"`
	Pending    []Siginfo `json:"pending,omitempty"`
	Altstack   Altstack  `json:"altstack"`
	Rseq       *Rseq     `json:"rseq,omitempty"`
	ClearTID   uint64    `json:"clear_child_tid"`
	RobustList uint64    `json:"robust_list"`
	RobustLen  uint64    `json:"robust_list_len"`
	Creds      Creds     `json:"creds"`
	// Nice, Policy and RTPriority are the scheduling settings of sched(7).
	Nice       int `json:"nice"`
	Policy     int `json:"policy"`
	RTPriority int `json:"rt_priority"`
	// Syscall describes the system call the thread was blocked in, if any.
	Syscall *Syscall `json:"syscall,omitempty"`
	// Seccomp is the thread's chain of seccomp filters, oldest first; empty
	// when the thread has none. Threads have chains of their own: a filter
	// installed without SECCOMP_FILTER_FLAG_TSYNC binds only its thread.
	Seccomp []SeccompFilter `json:"seccomp,omitempty"`
	// Attrs are the thread's other kernel settings (see attrs.go); absent in
	// older images.
	Attrs *ThreadAttrs `json:"attrs,omitempty"`
}

// SeccompFilter is one seccomp filter: the seccomp(2) flags to install it
// with and its classic BPF program as the seccomp ABI lays it out, struct
// sock_filter entries of 8 bytes (code u16, jt u8, jf u8, k u32,
// little-endian as on x86-64).
type SeccompFilter struct {
	// Flags are SECCOMP_FILTER_FLAG_* bits; the kernel only reports
	// SECCOMP_FILTER_FLAG_LOG.
	Flags uint64 `json:"flags,omitempty"`
	Prog  []byte `json:"prog"`
}

// Regs are the x86-64 general registers in the ptrace user_regs layout.
type Regs struct {
	R15, R14, R13, R12, Rbp, Rbx, R11, R10, R9, R8 uint64
	Rax, Rcx, Rdx, Rsi, Rdi, OrigRax               uint64
	Rip, Cs, Eflags, Rsp, Ss, FsBase, GsBase       uint64
	Ds, Es, Fs, Gs                                 uint64
}

// Syscall is an interrupted system call: its number and the -ERESTART*
// code the kernel left in rax.
type Syscall struct {
	Nr     int64 `json:"nr"`
	Result int64 `json:"result"`
}

// Altstack is a sigaltstack(2) setting.
type Altstack struct {
	SP    uint64 `json:"sp"`
	Flags int32  `json:"flags"`
	Size  uint64 `json:"size"`
}

// Rseq is an rseq(2) registration.
type Rseq struct {
	Pointer   uint64 `json:"pointer"`
	Size      uint32 `json:"size"`
	Signature uint32 `json:"signature"`
}

// Sigact is one rt_sigaction(2) disposition.
type Sigact struct {
	Signal   int    `json:"signal"`
	Handler  uint64 `json:"handler"`
	Flags    uint64 `json:"flags"`
	Restorer uint64 `json:"restorer"`
	Mask     uint64 `json:"mask"`
}

// Siginfo is a queued signal as the signal ABI's siginfo_t (128 bytes).
type Siginfo []byte

// Itimer is a setitimer(2) setting: time left and interval, in microseconds.
type Itimer struct {
	ValueUs    int64 `json:"value_us"`
	IntervalUs int64 `json:"interval_us"`
}

// PosixTimer is a timer_create(2) timer: its ID, clock, how it notifies,
// and the time left until it fires next (re-armed relative to the restore)
// and its interval.
type PosixTimer struct {
	ID         int    `json:"id"`
	Clock      int    `json:"clock"`
	Notify     int    `json:"notify"` // SIGEV_SIGNAL, SIGEV_NONE, or with SIGEV_THREAD_ID
	Signal     int    `json:"signal"`
	Value      uint64 `json:"sigval"`
	TID        int    `json:"tid,omitempty"`
	ValueNs    int64  `json:"value_ns"`
	IntervalNs int64  `json:"interval_ns"`
}

// Rlimit is one resource limit.
type Rlimit struct {
	Resource int    `json:"resource"`
	Cur      uint64 `json:"cur"`
	Max      uint64 `json:"max"`
}

// Creds are a task's credentials.
type Creds struct {
	UID        [4]uint32 `json:"uid"` // real, effective, saved, filesystem
	GID        [4]uint32 `json:"gid"`
	Groups     []uint32  `json:"groups"`
	CapInh     uint64    `json:"cap_inheritable"`
	CapPrm     uint64    `json:"cap_permitted"`
	CapEff     uint64    `json:"cap_effective"`
	CapBnd     uint64    `json:"cap_bounding"`
	CapAmb     uint64    `json:"cap_ambient"`
	Securebits uint32    `json:"securebits"`
	NoNewPrivs bool      `json:"no_new_privs"`
}

// MM are the address-space fields of prctl(PR_SET_MM_MAP).
type MM struct {
	StartCode  uint64 `json:"start_code"`
	EndCode    uint64 `json:"end_code"`
	StartData  uint64 `json:"start_data"`
	EndData    uint64 `json:"end_data"`
	StartBrk   uint64 `json:"start_brk"`
	Brk        uint64 `json:"brk"`
	StartStack uint64 `json:"start_stack"`
	ArgStart   uint64 `json:"arg_start"`
	ArgEnd     uint64 `json:"arg_end"`
	EnvStart   uint64 `json:"env_start"`
	EnvEnd     uint64 `json:"env_end"`
	Auxv       []byte `json:"auxv"`
}

// Mapping kinds.
const (
	MapAnon   = "anon"   // private anonymous memory (heap, stacks, malloc arenas)
	MapFile   = "file"   // a file mapped private or shared
	MapShared = "shared" // shared memory stored once in SharedMemory
	MapVDSO   = "vdso"   // kernel-provided [vdso]
	MapVVAR   = "vvar"   // kernel-provided data pages next to the vDSO
	MapSkip   = "vsyscall"
	MapSysV   = "sysv-shm" // a System V segment attached with shmat; SharedID is its ID
)

// Mapping is one virtual memory area.
type Mapping struct {
	Start  uint64 `json:"start"`
	End    uint64 `json:"end"`
	Prot   int    `json:"prot"`
	Shared bool   `json:"shared"`
	Kind   string `json:"kind"`
	// Name is the pseudo-path ([heap], [stack], [vdso], ...) or file path.
	Name string `json:"name,omitempty"`
	// File refers to the backing file of kind "file".
	File   *Ref   `json:"file,omitempty"`
	Offset uint64 `json:"offset"`
	// SharedID indexes Tree.SharedMemory for kind "shared".
	SharedID int `json:"shared_id,omitempty"`
	// Flags are smaps VmFlags worth restoring: gd (grows down), dd, dc, wf,
	// hg, nh, lo, mw, sr, rr, mg, nr, dp, gu (see docs/image-format.md).
	Flags []string `json:"flags,omitempty"`
	// Runs are the stored pages: [addr, count, file offset] in pages.
	Runs []Run `json:"runs,omitempty"`
	// Guards are the guard pages of the mapping (MADV_GUARD_INSTALL):
	// accessing them faults; they hold no data.
	Guards []PageRange `json:"guards,omitempty"`
	// Inherit marks a private anonymous mapping that the process's parent
	// (in the tree) has too, at the same place, with the same protection,
	// name and flags, and whose pages the two still shared at checkpoint
	// (copy-on-write since a fork): those pages are stored with the
	// parent's only. The restore forks the process from its restored
	// parent, keeps the mapping, writes Runs (the pages that had become the
	// process's own) and drops Zero.
	Inherit bool `json:"inherit,omitempty"`
	// Zero are, in an inherited mapping, the pages the process had none of
	// (never touched, or dropped) where its parent had one: they read as
	// zeros.
	Zero []PageRange `json:"zero,omitempty"`
}

// PageRange is a range of Pages pages starting at Addr.
type PageRange struct {
	Addr  uint64 `json:"addr"`
	Pages uint64 `json:"pages"`
}

// Run is a contiguous range of stored pages.
type Run struct {
	Addr  uint64 `json:"addr"`
	Pages uint64 `json:"pages"`
	// Off is the byte offset of the first page in the pages file.
	Off uint64 `json:"off"`
}

// Ref names a file by path, with the identity it had at checkpoint.
// A deleted file's contents are stored in the image under Contents.
type Ref struct {
	Path     string `json:"path"`
	Deleted  bool   `json:"deleted,omitempty"`
	Contents string `json:"contents,omitempty"`
	Size     int64  `json:"size"`
	Mode     uint32 `json:"mode"`
	Inode    uint64 `json:"inode"`
	// ID names one object that restore recreates (a deleted file,
	// directory, FIFO, device node or symlink, a memfd): every Ref of the
	// image with this ID is that one object, however many descriptors,
	// mappings, working directories and watches refer to it. 0 for a file
	// reopened by path.
	ID int `json:"id,omitempty"`
	// UID, GID and the access and modification times (ns since the epoch)
	// of a recreated object.
	UID     uint32 `json:"uid,omitempty"`
	GID     uint32 `json:"gid,omitempty"`
	AtimeNs int64  `json:"atime_ns,omitempty"`
	MtimeNs int64  `json:"mtime_ns,omitempty"`
	// Runs are the data extents of Contents (Addr: offset in the file, Off:
	// offset in Contents, in pages); the rest of the file's Size is holes.
	// Without runs, Contents is the whole file.
	Runs []Run `json:"runs,omitempty"`
	// Memfd marks a memfd_create(2) object, named by Path ("/memfd:NAME"),
	// with Seals (F_GET_SEALS), added once the restore is complete.
	Memfd bool `json:"memfd,omitempty"`
	Seals int  `json:"seals,omitempty"`
	// Volatile marks a regular file of a tmpfs (/dev/shm, /run, a tmpfs
	// /tmp), which a reboot empties: its contents are in the image, and the
	// restore recreates it at Path, with them, if it is not there.
	Volatile bool `json:"volatile,omitempty"`
	// Tmpfile marks a file opened with O_TMPFILE and never linked: it is
	// recreated with O_TMPFILE so that it can still be linked (linkat).
	Tmpfile bool `json:"tmpfile,omitempty"`
	// Rdev is the device number of a deleted device node; Target the
	// contents of a deleted symbolic link.
	Rdev   uint64 `json:"rdev,omitempty"`
	Target string `json:"target,omitempty"`
}

// SharedMemory is a shared memory object stored once: its size, name and
// the runs of its pages that have data.
type SharedMemory struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
	// Kind is "anon" for MAP_SHARED|MAP_ANONYMOUS, "memfd", or "file" for a
	// deleted file mapped shared.
	Kind  string `json:"kind"`
	Size  uint64 `json:"size"`
	Data  string `json:"data"`
	Runs  []Run  `json:"runs,omitempty"`
	Seals int    `json:"seals,omitempty"`
}
