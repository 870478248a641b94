// Package disks picks the root disk by Ironic's root device hints and erases disks.
// Everything works on a regular file as on a block device, so tests use temp files.
package disks

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"metalplane/ramdisk/internal/protocol"
)

const GiB = 1 << 30

// MinRootSize is IPA's smallest default root disk: smaller ones are USB sticks, SD cards
// and vendor utility partitions.
const MinRootSize = 4 * GiB

// SizeHint is a parsed size hint: an operator and a size in GiB.
type SizeHint struct {
	Op   string
	GiB  int64
	Orig string
}

var sizeExpr = regexp.MustCompile(`^\s*(==|!=|>=|<=|>|<|=)?\s*([0-9]+)\s*$`)

// ParseSizeHint reads Ironic's size hint: an integer, or a string holding one, optionally
// after an operator ("100", ">= 100").
func ParseSizeHint(raw json.RawMessage) (*SizeHint, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err == nil {
		if n <= 0 {
			return nil, fmt.Errorf("root device hint size must be positive, got %d", n)
		}
		return &SizeHint{Op: "==", GiB: n, Orig: string(raw)}, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("root device hint size must be an integer or a string")
	}
	m := sizeExpr.FindStringSubmatch(s)
	if m == nil {
		return nil, fmt.Errorf("root device hint size %q: want a number of GiB, optionally after ==, !=, >=, <=, > or <", s)
	}
	n, _ = strconv.ParseInt(m[2], 10, 64)
	op := m[1]
	if op == "" || op == "=" {
		op = "=="
	}
	return &SizeHint{Op: op, GiB: n, Orig: s}, nil
}

func (h *SizeHint) match(bytes int64) bool {
	g := bytes / GiB // IPA compares whole GiB, rounded down
	switch h.Op {
	case "!=":
		return g != h.GiB
	case ">=":
		return g >= h.GiB
	case "<=":
		return g <= h.GiB
	case ">":
		return g > h.GiB
	case "<":
		return g < h.GiB
	}
	return g == h.GiB
}

// normalize is IPA's normalization of string hints and device values: trimmed, lower case.
func normalize(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func matchString(hint, value *string) bool {
	if hint == nil {
		return true
	}
	return value != nil && normalize(*hint) == normalize(*value)
}

// Select picks the install disk, as IPA's get_os_install_device does: with hints, the
// first disk (by name) matching every hint; without, the smallest disk of at least 4 GiB.
func Select(disks []protocol.Disk, hints *protocol.RootDeviceHints) (protocol.Disk, error) {
	if hints == nil || isEmptyHints(hints) {
		sorted := append([]protocol.Disk(nil), disks...)
		sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Size < sorted[j].Size })
		for _, d := range sorted {
			if d.Size >= MinRootSize {
				return d, nil
			}
		}
		return protocol.Disk{}, fmt.Errorf("no disk of at least 4 GiB among %d disks", len(disks))
	}
	size, err := ParseSizeHint(hints.Size)
	if err != nil {
		return protocol.Disk{}, err
	}
	for _, d := range disks {
		if size != nil && !size.match(d.Size) {
			continue
		}
		if hints.Name != nil && "/dev/"+strings.TrimPrefix(*hints.Name, "/dev/") != d.Name {
			continue
		}
		if hints.Rotational != nil && *hints.Rotational != d.Rotational {
			continue
		}
		if !matchString(hints.Model, d.Model) || !matchString(hints.Vendor, d.Vendor) ||
			!matchString(hints.Serial, d.Serial) || !matchString(hints.WWN, d.WWN) {
			continue
		}
		return d, nil
	}
	b, _ := json.Marshal(hints)
	return protocol.Disk{}, fmt.Errorf("no disk matches the root device hints %s", b)
}

func isEmptyHints(h *protocol.RootDeviceHints) bool {
	return len(h.Size) == 0 && h.Model == nil && h.Serial == nil && h.WWN == nil && h.Name == nil &&
		h.Rotational == nil && h.Vendor == nil
}

// Skipped tells whether a disk is in an erase step's skip list ("sda" or "/dev/sda").
func Skipped(name string, skip []string) bool {
	for _, s := range skip {
		if "/dev/"+strings.TrimPrefix(s, "/dev/") == name {
			return true
		}
	}
	return false
}
