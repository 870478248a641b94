package disks

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The ioctls on a real block device: a loop device over a temp file. Needs root and
// /dev/loop-control, so it runs only with METALPLANE_TEST_LOOP=1.
func TestLoopDevice(t *testing.T) {
	if os.Getenv("METALPLANE_TEST_LOOP") != "1" {
		t.Skip("set METALPLANE_TEST_LOOP=1 (as root) to test on a loop device")
	}
	backing := filepath.Join(t.TempDir(), "backing")
	if err := os.WriteFile(backing, bytes.Repeat([]byte{0xCD}, 16<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", backing).Output()
	if err != nil {
		t.Fatal(err)
	}
	dev := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", dev).Run()

	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	size, err := Size(f)
	f.Close()
	if err != nil || size != 16<<20 || !func() bool { f, _ := os.Open(dev); defer f.Close(); return IsBlockDevice(f) }() {
		t.Fatalf("size %d, %v", size, err)
	}
	method, err := Erase(dev, nil)
	if err != nil || method != "discard" {
		t.Fatalf("erase: %s %v", method, err)
	}
	b := make([]byte, 16<<20)
	f, _ = os.Open(dev)
	_, _ = f.ReadAt(b, 0)
	f.Close()
	if bytes.Count(b, []byte{0}) != len(b) {
		t.Error("loop discard should read back zeros")
	}
}
