package disks

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"metalplane/ramdisk/internal/protocol"
)

func sp(s string) *string { return &s }
func bp(b bool) *bool     { return &b }

var fleet = []protocol.Disk{
	{Name: "/dev/sda", Size: 2 * GiB, Model: sp("USB Stick")},
	{Name: "/dev/sdb", Size: 1000 * GiB, Rotational: true, Model: sp("ST1000"), Vendor: sp("ATA "), Serial: sp("Z1")},
	{Name: "/dev/sdc", Size: 480*GiB + 12345, Model: sp("PERC H755"), WWN: sp("0x5000c500a1b2c3d4"), Serial: sp("S3Z8")},
	{Name: "/dev/nvme0n1", Size: 960 * GiB, Serial: sp("NV1")},
}

func TestSelect(t *testing.T) {
	for _, c := range []struct {
		hints string
		want  string
	}{
		{``, "/dev/sdc"}, // smallest of at least 4 GiB
		{`{}`, "/dev/sdc"},
		{`{"size": 1000}`, "/dev/sdb"},
		{`{"size": "480"}`, "/dev/sdc"}, // whole GiB, rounded down
		{`{"size": ">= 900"}`, "/dev/sdb"},
		{`{"size": "< 500", "rotational": false}`, "/dev/sda"},
		{`{"name": "nvme0n1"}`, "/dev/nvme0n1"},
		{`{"name": "/dev/sdb"}`, "/dev/sdb"},
		{`{"model": "perc h755 "}`, "/dev/sdc"}, // IPA normalizes: trimmed, lower case
		{`{"vendor": "ATA"}`, "/dev/sdb"},
		{`{"serial": "NV1"}`, "/dev/nvme0n1"},
		{`{"wwn": "0x5000c500a1b2c3d4", "rotational": false}`, "/dev/sdc"},
		{`{"rotational": true}`, "/dev/sdb"},
	} {
		var h *protocol.RootDeviceHints
		if c.hints != "" {
			h = &protocol.RootDeviceHints{}
			if err := json.Unmarshal([]byte(c.hints), h); err != nil {
				t.Fatal(err)
			}
		}
		d, err := Select(fleet, h)
		if err != nil || d.Name != c.want {
			t.Errorf("%s: got %s, %v; want %s", c.hints, d.Name, err, c.want)
		}
	}
	for _, c := range []string{`{"size": 7}`, `{"model": "nope"}`, `{"serial": "Z1", "rotational": false}`,
		`{"size": "about 5"}`, `{"size": 0}`, `{"wwn": "x"}`} {
		h := &protocol.RootDeviceHints{}
		_ = json.Unmarshal([]byte(c), h)
		if d, err := Select(fleet, h); err == nil {
			t.Errorf("%s: got %s, want an error", c, d.Name)
		}
	}
	if _, err := Select(fleet[:1], nil); err == nil || !strings.Contains(err.Error(), "4 GiB") {
		t.Errorf("no big disk: %v", err)
	}
}

func TestSkipped(t *testing.T) {
	if !Skipped("/dev/sdb", []string{"sda", "sdb"}) || !Skipped("/dev/sdb", []string{"/dev/sdb"}) || Skipped("/dev/sdb", nil) {
		t.Error("skip")
	}
}

func filled(t *testing.T, size int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(p, bytes.Repeat([]byte{0xAB}, size), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEraseMetadata(t *testing.T) {
	p := filled(t, 5<<20)
	if err := EraseMetadata(p); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if len(b) != 5<<20 {
		t.Fatalf("size changed: %d", len(b))
	}
	zero := func(from, to int) bool { return bytes.Count(b[from:to], []byte{0}) == to-from }
	if !zero(0, 1<<20) || !zero(4<<20, 5<<20) || b[1<<20] != 0xAB || b[4<<20-1] != 0xAB {
		t.Error("wrong bytes zeroed")
	}
	// Smaller than two MiB: everything is zeroed, nothing written past the end.
	small := filled(t, 1500*1024)
	if err := EraseMetadata(small); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(small)
	if len(b) != 1500*1024 || bytes.Count(b, []byte{0}) != len(b) {
		t.Error("small file")
	}
	if err := EraseMetadata(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing disk must fail")
	}
}

func TestEraseZeroesAFile(t *testing.T) {
	p := filled(t, 9<<20+7)
	var calls, last int64
	method, err := Erase(p, func(done, total int64) { calls++; last = done })
	if err != nil || method != "zero" {
		t.Fatal(method, err)
	}
	b, _ := os.ReadFile(p)
	if len(b) != 9<<20+7 || bytes.Count(b, []byte{0}) != len(b) {
		t.Error("not zeroed")
	}
	if calls == 0 || last != int64(len(b)) {
		t.Errorf("progress: %d calls, last %d", calls, last)
	}
}
