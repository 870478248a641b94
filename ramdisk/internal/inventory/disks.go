package inventory

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"metalplane/ramdisk/internal/protocol"
)

// ignoredDisks are the /sys/block prefixes that are never install targets (IPA skips
// RAM disks, loop devices, compressed swap, optical and floppy drives).
var ignoredDisks = []string{"ram", "loop", "zram", "sr", "fd"}

func readDisks(root string) ([]protocol.Disk, error) {
	entries, err := os.ReadDir(join(root, "sys/block"))
	if err != nil {
		return nil, err
	}
	byPath := diskByPath(root)
	disks := []protocol.Disk{}
	for _, e := range entries {
		name := e.Name()
		if ignored(name) {
			continue
		}
		dir := join(root, "sys/block", name)
		sectors, err := strconv.ParseInt(readTrim(filepath.Join(dir, "size")), 10, 64)
		if err != nil || sectors <= 0 {
			continue // no medium (an empty card reader) or unreadable
		}
		d := protocol.Disk{
			Name:       "/dev/" + name,
			Size:       sectors * 512, // /sys/block/X/size counts 512-byte sectors whatever the device's
			Rotational: readTrim(filepath.Join(dir, "queue/rotational")) == "1",
			Model:      optional(readTrim(filepath.Join(dir, "device/model"))),
			Vendor:     optional(readTrim(filepath.Join(dir, "device/vendor"))),
			Serial:     optional(readTrim(filepath.Join(dir, "device/serial"))),
			WWN:        optional(readTrim(filepath.Join(dir, "device/wwid"))),
			ByPath:     optional(byPath[name]),
		}
		disks = append(disks, d)
	}
	sort.Slice(disks, func(i, j int) bool { return disks[i].Name < disks[j].Name })
	return disks, nil
}

func ignored(name string) bool {
	for _, p := range ignoredDisks {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// diskByPath maps a disk's kernel name to its /dev/disk/by-path link (udev's, when the
// initramfs runs udev or mdev makes them), as IPA reports it.
func diskByPath(root string) map[string]string {
	out := map[string]string{}
	dir := join(root, "dev/disk/by-path")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		name := filepath.Base(target)
		if _, seen := out[name]; !seen {
			out[name] = "/dev/disk/by-path/" + e.Name()
		}
	}
	return out
}
