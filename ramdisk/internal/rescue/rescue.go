// Package rescue prepares the rescue login and powers the machine off or reboots it.
package rescue

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// User is Ironic's rescue user name.
const User = "rescue"

// hashField is one /etc/shadow field: printable ASCII without ':' (the schema's pattern).
var hashField = regexp.MustCompile(`^[!-9;-~]{1,512}$`)

// SetPassword gives the rescue user the crypt(3) hash (Ironic sends a hash, never the
// password) in root/etc/shadow, adding the user to root/etc/passwd when missing. The
// rescue user is uid 0: rescue mode exists to give the tenant the whole machine.
func SetPassword(root, hash string) error {
	if !hashField.MatchString(hash) {
		return fmt.Errorf("rescue password hash must be 1-512 printable characters without ':' or spaces")
	}
	days := time.Now().Unix() / 86400
	if err := upsert(filepath.Join(root, "etc/shadow"), 0o600,
		fmt.Sprintf("%s:%s:%d:0:99999:7:::", User, hash, days)); err != nil {
		return err
	}
	return ensure(filepath.Join(root, "etc/passwd"), 0o644, User+":x:0:0:Ironic rescue:/root:/bin/sh")
}

// upsert replaces the user's line in a colon file or appends it, atomically.
func upsert(path string, mode os.FileMode, line string) error {
	lines, err := readLines(path)
	if err != nil {
		return err
	}
	out, found := make([]string, 0, len(lines)+1), false
	for _, l := range lines {
		if strings.HasPrefix(l, User+":") {
			if found {
				continue // a duplicate would be ambiguous; keep one
			}
			l, found = line, true
		}
		out = append(out, l)
	}
	if !found {
		out = append(out, line)
	}
	return writeLines(path, mode, out)
}

// ensure appends the user's line unless the user is already there.
func ensure(path string, mode os.FileMode, line string) error {
	lines, err := readLines(path)
	if err != nil {
		return err
	}
	for _, l := range lines {
		if strings.HasPrefix(l, User+":") {
			return nil
		}
	}
	return writeLines(path, mode, append(lines, line))
}

func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil, nil
	}
	return strings.Split(s, "\n"), nil
}

func writeLines(path string, mode os.FileMode, lines []string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Power reboots or powers off the machine ("reboot" or "poweroff") after syncing disks.
// It returns only on failure. Never called in tests (they inject their own).
func Power(action string) error {
	cmd := syscall.LINUX_REBOOT_CMD_POWER_OFF
	if action == "reboot" {
		cmd = syscall.LINUX_REBOOT_CMD_RESTART
	}
	syscall.Sync()
	return syscall.Reboot(cmd)
}
