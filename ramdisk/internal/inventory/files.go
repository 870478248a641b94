// Package inventory builds the hardware inventory (ironic-python-agent's shape) from
// procfs and sysfs under a root directory, so tests run on a fake tree in testdata.
package inventory

import (
	"os"
	"path/filepath"
	"strings"
)

// readTrim returns a file's trimmed contents, "" when absent or unreadable (sysfs
// attributes vary by driver; a missing one is not an error).
func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// optional turns "" into null, as IPA reports unknown values.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func join(root string, parts ...string) string {
	return filepath.Join(append([]string{root}, parts...)...)
}
