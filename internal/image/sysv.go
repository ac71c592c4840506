package image

// SysV holds the System V IPC objects of the host IPC namespace that the
// tree used: shared memory segments it had attached or created, semaphore
// sets it last operated on, message queues it last sent to or received
// from. They are kept with their IDs, keys, owners, modes and contents.
type SysV struct {
	Shm []SysVShm `json:"shm,omitempty"`
	Sem []SysVSem `json:"sem,omitempty"`
	Msg []SysVMsg `json:"msg,omitempty"`
}

// SysVShm is a shared memory segment; its bytes are in the image file Data.
type SysVShm struct {
	ID   int    `json:"id"`
	Key  int32  `json:"key"`
	Mode uint32 `json:"mode"`
	SysVOwner
	Size uint64 `json:"size"`
	// Destroyed is set when IPC_RMID was already requested: the segment
	// goes away once the last process detaches.
	Destroyed bool   `json:"destroyed,omitempty"`
	Data      string `json:"data"`
}

// SysVSem is a semaphore set and the value of each semaphore.
type SysVSem struct {
	ID   int    `json:"id"`
	Key  int32  `json:"key"`
	Mode uint32 `json:"mode"`
	SysVOwner
	Values []uint16 `json:"values"`
}

// SysVMsg is a message queue and the messages queued in it, in order.
type SysVMsg struct {
	ID   int    `json:"id"`
	Key  int32  `json:"key"`
	Mode uint32 `json:"mode"`
	SysVOwner
	Messages []SysVMessage `json:"messages,omitempty"`
}

// SysVMessage is one queued message.
type SysVMessage struct {
	Type int64  `json:"type"`
	Data []byte `json:"data"`
}

// SysVOwner is the owner of a System V object (what IPC_SET changes; absent
// in older images: root). The kernel checks access against it and against
// the creator, which the restore cannot choose: the restorer (root) is.
type SysVOwner struct {
	UID uint32 `json:"uid,omitempty"`
	GID uint32 `json:"gid,omitempty"`
}
