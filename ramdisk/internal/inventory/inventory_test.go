package inventory

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"metalplane/ramdisk/internal/protocol"
)

func TestCollectFakeTree(t *testing.T) {
	inv, err := Collect("testdata/root", "52:54:00:12:34:56")
	if err != nil {
		t.Fatal(err)
	}
	c := inv.CPU
	if c.Count != 3 || *c.ModelName != "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz" || *c.Frequency != "2000.000" ||
		c.Architecture != "x86_64" || *c.SocketCount != 2 || len(c.Flags) != 4 {
		t.Errorf("cpu: %+v", c)
	}
	if inv.Memory.Total != 16318412*1024 || inv.Memory.PhysicalMB != 16384 {
		t.Errorf("memory: %+v", inv.Memory)
	}
	if len(inv.Disks) != 2 {
		t.Fatalf("disks: %+v", inv.Disks)
	}
	nv, sda := inv.Disks[0], inv.Disks[1]
	if nv.Name != "/dev/nvme0n1" || nv.Size != 1875385008*512 || nv.Rotational || *nv.Serial != "S64DNX0R" ||
		nv.Vendor != nil || nv.ByPath != nil {
		t.Errorf("nvme: %+v", nv)
	}
	if sda.Name != "/dev/sda" || !sda.Rotational || *sda.Model != "ST480" || *sda.Vendor != "ATA" ||
		*sda.WWN != "naa.5000c500a1b2c3d4" || sda.Serial != nil || *sda.ByPath != "/dev/disk/by-path/pci-0000:00:17.0-ata-1" {
		t.Errorf("sda: %+v", sda)
	}
	if len(inv.Interfaces) != 2 {
		t.Fatalf("interfaces: %+v", inv.Interfaces)
	}
	e1, e2 := inv.Interfaces[0], inv.Interfaces[1]
	if e1.Name != "eno1" || !e1.HasCarrier || *e1.Driver != "ixgbe" || *e1.SpeedMbps != 10000 || !*e1.PXEEnabled {
		t.Errorf("eno1: %+v", e1)
	}
	if e2.HasCarrier || e2.Driver != nil || e2.SpeedMbps != nil || *e2.PXEEnabled || e2.IPv4Address != nil {
		t.Errorf("eno2: %+v", e2)
	}
	if *inv.SystemVendor.ProductName != "PowerEdge R650" || *inv.SystemVendor.Manufacturer != "Dell Inc." ||
		*inv.SystemVendor.SerialNumber != "ABC1234" {
		t.Errorf("vendor: %+v", inv.SystemVendor)
	}
	if inv.Boot.CurrentBootMode != "uefi" || *inv.Boot.PXEInterface != "52:54:00:12:34:56" || *inv.Hostname != "node-7" {
		t.Errorf("boot: %+v %v", inv.Boot, inv.Hostname)
	}
	// The inventory fits in a valid result message.
	data, _ := json.Marshal(protocol.NewResult("s1", "c1", protocol.InspectResult{Inventory: *inv}, nil))
	if err := protocol.ValidateRequest(data); err != nil {
		t.Fatal(err)
	}
}

func TestMinimalTree(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		_ = os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("proc/cpuinfo", "processor : 0\nFeatures : fp asimd\n")
	write("proc/meminfo", "MemTotal: 3900000 kB\n")
	_ = os.MkdirAll(filepath.Join(root, "sys/block"), 0o755)
	_ = os.MkdirAll(filepath.Join(root, "sys/class/net"), 0o755)
	inv, err := Collect(root, "")
	if err != nil {
		t.Fatal(err)
	}
	// No SMBIOS: MemTotal rounded up to a whole GiB; BIOS boot; no sockets known.
	if inv.Memory.PhysicalMB != 4096 || inv.Boot.CurrentBootMode != "bios" || inv.CPU.SocketCount != nil ||
		inv.CPU.Flags[1] != "asimd" || inv.Boot.PXEInterface != nil || inv.Hostname != nil {
		t.Errorf("%+v", inv)
	}
	if _, err := Collect(t.TempDir(), ""); err == nil {
		t.Error("an empty root must fail")
	}
}
