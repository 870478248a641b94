package inventory

import (
	"fmt"
	"os"

	"metalplane/ramdisk/internal/protocol"
)

// Collect builds the inventory from the tree at root ("/" on the machine). bootMAC is
// the MAC the machine booted from (BOOTIF), "" when unknown.
func Collect(root, bootMAC string) (*protocol.Inventory, error) {
	cpu, err := readCPU(root)
	if err != nil {
		return nil, err
	}
	mem, err := readMemory(root)
	if err != nil {
		return nil, err
	}
	disks, err := readDisks(root)
	if err != nil {
		return nil, fmt.Errorf("disks: %w", err)
	}
	// Addresses come from the running kernel, so only when looking at the real root.
	ifaces, err := readInterfaces(root, bootMAC, root == "/")
	if err != nil {
		return nil, fmt.Errorf("interfaces: %w", err)
	}
	inv := &protocol.Inventory{
		CPU: cpu, Memory: mem, Disks: disks, Interfaces: ifaces,
		SystemVendor: protocol.SystemVendor{
			ProductName:  optional(readTrim(join(root, "sys/class/dmi/id/product_name"))),
			SerialNumber: optional(readTrim(join(root, "sys/class/dmi/id/product_serial"))),
			Manufacturer: optional(readTrim(join(root, "sys/class/dmi/id/sys_vendor"))),
		},
		Boot:     protocol.Boot{CurrentBootMode: "bios", PXEInterface: optional(bootMAC)},
		Hostname: optional(readTrim(join(root, "proc/sys/kernel/hostname"))),
	}
	if inv.Hostname != nil && *inv.Hostname == "(none)" { // the kernel's "not set"
		inv.Hostname = nil
	}
	if _, err := os.Stat(join(root, "sys/firmware/efi")); err == nil {
		inv.Boot.CurrentBootMode = "uefi"
	}
	return inv, nil
}

// Disks lists the install candidates alone (for the erase and write steps).
func Disks(root string) ([]protocol.Disk, error) {
	return readDisks(root)
}
