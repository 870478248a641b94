package inventory

import (
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"metalplane/ramdisk/internal/protocol"
)

// readInterfaces lists physical interfaces: those with a device link in sysfs (bridges,
// bonds, VLANs and lo have none), as IPA does.
func readInterfaces(root, bootMAC string, live bool) ([]protocol.Interface, error) {
	entries, err := os.ReadDir(join(root, "sys/class/net"))
	if err != nil {
		return nil, err
	}
	out := []protocol.Interface{}
	for _, e := range entries {
		name := e.Name()
		dir := join(root, "sys/class/net", name)
		if name == "lo" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "device")); err != nil {
			continue
		}
		mac := readTrim(filepath.Join(dir, "address"))
		if mac == "" {
			continue
		}
		iface := protocol.Interface{
			Name:       name,
			MACAddress: mac,
			HasCarrier: readTrim(filepath.Join(dir, "carrier")) == "1", // unreadable while down
		}
		if target, err := os.Readlink(filepath.Join(dir, "device/driver")); err == nil {
			iface.Driver = optional(filepath.Base(target))
		}
		if s, err := strconv.Atoi(readTrim(filepath.Join(dir, "speed"))); err == nil && s > 0 {
			iface.SpeedMbps = &s // -1 when unknown or no link
		}
		if live {
			iface.IPv4Address = ipv4(name)
		}
		if bootMAC != "" {
			pxe := mac == bootMAC
			iface.PXEEnabled = &pxe
		}
		out = append(out, iface)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ipv4 is the interface's first IPv4 address, from the running kernel.
func ipv4(name string) *string {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			s := n.IP.String()
			return &s
		}
	}
	return nil
}
