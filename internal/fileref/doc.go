// Package fileref is how an image names files (image.Ref), on both sides:
// the checkpoint describes a file by path and identity, and records once
// the objects no path leads to any more (deleted files, directories,
// FIFOs, device nodes, symlinks, memfds, and the files of a tmpfs, which a
// reboot empties); the restore opens them by path or recreates each object
// once. Descriptors (internal/files), mappings (internal/mem) and
// executables (internal/task, internal/restore) all go through it, so that
// one object stays one object for all of them.
package fileref
