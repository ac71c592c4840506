package contract

// The restorer initramfs's layout, which package restorer (old kernel)
// writes and package pid1 (new kernel) reads.
const (
	// RestorerRoot is where the restorer mounts the real root.
	RestorerRoot = "/newroot"
	// RestorerStage1 is the seamless binary under the name the restorer
	// runs stage 1 as (a link to its /init).
	RestorerStage1 = "/bin/seamless-restore"
	// RestorerModules names the modules to load, one file of
	// RestorerModuleDir per line, dependencies first, each followed by the
	// files it needs.
	RestorerModules = "/etc/seamless/modules"
	// RestorerModuleDir holds the modules.
	RestorerModuleDir = "/lib/modules"
)
