package image

// The kinds of description that name a file (Ref): opened again by path,
// or recreated when no path leads to them any more (a deleted file, a
// memfd). They have no record of their own.
const (
	FileRegular   = "regular"
	FileDirectory = "directory"
	FileMemfd     = "memfd"
	FileDevice    = "device"   // a character device reopened by path
	FileTerminal  = "terminal" // a terminal outside the tree, reopened by path
	FileCtty      = "dev-tty"  // /dev/tty, opened again inside the restored process
	FilePath      = "path"     // an O_PATH descriptor: any file, symlinks included
)
