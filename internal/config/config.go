// Package config reads /etc/seamless/seamless.conf and the drop-ins in
// /etc/seamless/seamless.conf.d/*.conf (read in name order, later files
// override earlier ones; "preserve" accumulates).
//
// The format is "key = value" lines; '#' starts a comment.
//
//	preserve = memcached.service redis-server.service
//	store = auto          # auto, ram or disk
//	disk-dir = /var/lib/seamless/images
//	timeout = 120s        # longest a checkpoint at shutdown may take
package config

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Path is the configuration file; its drop-ins are in Path + ".d".
const Path = "/etc/seamless/seamless.conf"

// Config is the merged configuration.
type Config struct {
	// Preserve lists units to carry across updates, in addition to those
	// with X-SeamlessPreserve=yes.
	Preserve []string `json:"preserve"`
	// Store is where the image waits for the new kernel: "ram", "disk", or
	// "auto" (RAM when it fits with room to spare, else disk).
	Store string `json:"store"`
	// DiskDir is the root-only directory of the disk store.
	DiskDir string `json:"disk_dir"`
	// Timeout bounds the checkpoint at shutdown.
	Timeout time.Duration `json:"timeout"`
}

// Default is the configuration without any file.
func Default() Config {
	return Config{Store: "auto", DiskDir: "/var/lib/seamless/images", Timeout: 120 * time.Second}
}

// Load reads path and path.d/*.conf. Missing files are not an error.
func Load(path string) (Config, error) {
	c := Default()
	files := []string{path}
	more, _ := filepath.Glob(path + ".d/*.conf")
	sort.Strings(more)
	files = append(files, more...)
	for _, f := range files {
		if err := c.read(f); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (c *Config) read(path string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("%s:%d: want key = value", path, n)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "preserve":
			c.Preserve = append(c.Preserve, strings.Fields(v)...)
		case "store":
			if v != "auto" && v != "ram" && v != "disk" {
				return fmt.Errorf("%s:%d: store must be auto, ram or disk, not %q", path, n, v)
			}
			c.Store = v
		case "disk-dir":
			if !filepath.IsAbs(v) {
				return fmt.Errorf("%s:%d: disk-dir must be an absolute path", path, n)
			}
			c.DiskDir = v
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("%s:%d: timeout %q is not a duration such as 120s", path, n, v)
			}
			c.Timeout = d
		default:
			return fmt.Errorf("%s:%d: unknown key %q", path, n, k)
		}
	}
	return sc.Err()
}
