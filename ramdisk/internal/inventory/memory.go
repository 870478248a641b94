package inventory

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"metalplane/ramdisk/internal/protocol"
)

func readMemory(root string) (protocol.Memory, error) {
	f, err := os.Open(join(root, "proc/meminfo"))
	if err != nil {
		return protocol.Memory{}, fmt.Errorf("memory: %w", err)
	}
	defer f.Close()
	var totalKB int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			totalKB, err = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return protocol.Memory{}, fmt.Errorf("memory: bad MemTotal %q", rest)
			}
		}
	}
	if totalKB <= 0 {
		return protocol.Memory{}, fmt.Errorf("memory: no MemTotal in /proc/meminfo")
	}
	m := protocol.Memory{Total: totalKB * 1024, PhysicalMB: dmiMemoryMB(root)}
	if m.PhysicalMB == 0 {
		// No SMBIOS memory devices: the kernel keeps some memory for itself, so MemTotal is
		// below what is installed; round up to a whole GiB rather than under-report.
		mb := m.Total >> 20
		m.PhysicalMB = (mb + 1023) / 1024 * 1024
	}
	return m, nil
}

// dmiMemoryMB sums the SMBIOS type 17 (memory device) sizes, as IPA does with dmidecode,
// reading the raw tables the kernel exposes; 0 when there are none.
func dmiMemoryMB(root string) int64 {
	entries, _ := filepath.Glob(join(root, "sys/firmware/dmi/entries/17-*/raw"))
	var total int64
	for _, e := range entries {
		raw, err := os.ReadFile(e)
		if err != nil || len(raw) < 0x0E {
			continue
		}
		size := int64(binary.LittleEndian.Uint16(raw[0x0C:]))
		switch {
		case size == 0 || size == 0xFFFF: // empty slot, unknown
		case size == 0x7FFF && len(raw) >= 0x20: // extended size, in MiB
			total += int64(binary.LittleEndian.Uint32(raw[0x1C:]) & 0x7FFFFFFF)
		case size&0x8000 != 0: // in KiB
			total += (size & 0x7FFF) / 1024
		default:
			total += size
		}
	}
	return total
}
