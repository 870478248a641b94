package rescue

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSetPassword(t *testing.T) {
	root := t.TempDir()
	_ = os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	_ = os.WriteFile(filepath.Join(root, "etc/shadow"), []byte("root:*:19000:0:99999:7:::\nrescue:!:1:0:99999:7:::\n"), 0o600)
	if err := SetPassword(root, "$6$salt$hash/one."); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(root, "$6$salt$hash/two."); err != nil {
		t.Fatal(err)
	}
	shadow, _ := os.ReadFile(filepath.Join(root, "etc/shadow"))
	lines := strings.Split(strings.TrimSpace(string(shadow)), "\n")
	if len(lines) != 2 || lines[0] != "root:*:19000:0:99999:7:::" || !strings.HasPrefix(lines[1], "rescue:$6$salt$hash/two.:") {
		t.Errorf("shadow: %q", shadow)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if string(passwd) != "rescue:x:0:0:Ironic rescue:/root:/bin/sh\n" {
		t.Errorf("passwd: %q", passwd)
	}
	if st, _ := os.Stat(filepath.Join(root, "etc/shadow")); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	for _, bad := range []string{"", "a:b", "a\nroot::0", "a b", strings.Repeat("x", 513)} {
		if err := SetPassword(root, bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
