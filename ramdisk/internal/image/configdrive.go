package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"metalplane/ramdisk/internal/disks"
	"metalplane/ramdisk/internal/protocol"
)

// MaxConfigdriveBytes is Ironic's limit on a config drive (64 MiB), compressed or not.
const MaxConfigdriveBytes = 64 << 20

// Partition types for the config drive: W95 FAT32 (LBA) on MBR, as Ironic uses; GPT's
// basic data partition.
const (
	mbrType = "c"
	gptType = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
)

// Run runs a command with stdin, returning its stdout (tests may replace it).
var Run = func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.Bytes(), nil
}

type table struct {
	PartitionTable struct {
		Label      string `json:"label"`
		SectorSize int64  `json:"sectorsize"`
		Partitions []struct {
			Node  string `json:"node"`
			Start int64  `json:"start"`
			Size  int64  `json:"size"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func readTable(ctx context.Context, path string) (*table, error) {
	out, err := Run(ctx, nil, "sfdisk", "-J", path)
	if err != nil {
		return nil, fmt.Errorf("reading the partition table (is there one?): %w", err)
	}
	var t table
	if err := json.Unmarshal(out, &t); err != nil {
		return nil, fmt.Errorf("sfdisk -J: %w", err)
	}
	if t.PartitionTable.SectorSize == 0 {
		t.PartitionTable.SectorSize = 512
	}
	return &t, nil
}

// WriteConfigdrive downloads and checks the gzipped config drive, appends a partition
// labelled config-2 after the image's partitions, and writes the drive into it. It
// returns the partition's name, e.g. /dev/sda3 (diskName is /dev/sda; path is where that
// disk is opened, which differs in tests).
func WriteConfigdrive(ctx context.Context, path, diskName string, args protocol.WriteConfigdriveArgs) (string, error) {
	drive, err := fetchConfigdrive(ctx, args)
	if err != nil {
		return "", err
	}
	before, err := readTable(ctx, path)
	if err != nil {
		return "", err
	}
	label := before.PartitionTable.Label
	sector := before.PartitionTable.SectorSize
	sectors := (int64(len(drive)) + 1<<20 - 1) >> 20 << 20 / sector // whole MiB
	var line string
	switch label {
	case "gpt":
		// The image was made for a smaller disk: move the backup GPT to this disk's end,
		// or sfdisk finds no free space after the image's partitions.
		if _, err := Run(ctx, nil, "sfdisk", "--relocate", "gpt-bak-std", path); err != nil {
			return "", err
		}
		line = fmt.Sprintf("size=%d, type=%s, name=config-2\n", sectors, gptType)
	case "dos":
		line = fmt.Sprintf("size=%d, type=%s\n", sectors, mbrType)
	default:
		return "", fmt.Errorf("unsupported partition table %q on %s", label, diskName)
	}
	if _, err := Run(ctx, []byte(line), "sfdisk", "--append", "--no-reread", "--no-tell-kernel", path); err != nil {
		return "", fmt.Errorf("adding the config drive partition: %w", err)
	}
	after, err := readTable(ctx, path)
	if err != nil {
		return "", err
	}
	node, start, err := newPartition(before, after)
	if err != nil {
		return "", err
	}
	if err := writeAt(path, drive, start*sector); err != nil {
		return "", err
	}
	_, _ = Run(ctx, nil, "blockdev", "--rereadpt", path) // fails on a file; harmless
	return partitionName(diskName, strings.TrimPrefix(node, path)), nil
}

// newPartition finds the partition sfdisk added: the one whose node was not there before.
func newPartition(before, after *table) (string, int64, error) {
	old := map[string]bool{}
	for _, p := range before.PartitionTable.Partitions {
		old[p.Node] = true
	}
	for _, p := range after.PartitionTable.Partitions {
		if !old[p.Node] {
			return p.Node, p.Start, nil
		}
	}
	return "", 0, fmt.Errorf("sfdisk added no partition")
}

// partitionName is the kernel's name for partition suffix ("3" or "p3") of diskName:
// a "p" goes between a disk name ending in a digit and the number (nvme0n1p3).
func partitionName(diskName, suffix string) string {
	num := strings.TrimPrefix(suffix, "p")
	if _, err := strconv.Atoi(num); err != nil {
		return diskName + suffix
	}
	if last := diskName[len(diskName)-1]; last >= '0' && last <= '9' {
		return diskName + "p" + num
	}
	return diskName + num
}

func fetchConfigdrive(ctx context.Context, args protocol.WriteConfigdriveArgs) ([]byte, error) {
	body, _, err := get(ctx, args.URL)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	gz, err := io.ReadAll(io.LimitReader(body, MaxConfigdriveBytes+1))
	if err != nil {
		return nil, fmt.Errorf("downloading the config drive: %w", err)
	}
	if len(gz) > MaxConfigdriveBytes {
		return nil, fmt.Errorf("config drive larger than %d bytes", MaxConfigdriveBytes)
	}
	sum := sha256.Sum256(gz)
	if got := hex.EncodeToString(sum[:]); got != args.SHA256 {
		return nil, fmt.Errorf("config drive checksum mismatch: sha256 %s, expected %s", got, args.SHA256)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("config drive is not gzip: %w", err)
	}
	drive, err := io.ReadAll(io.LimitReader(zr, MaxConfigdriveBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config drive: %w", err)
	}
	if len(drive) > MaxConfigdriveBytes || len(drive) == 0 {
		return nil, fmt.Errorf("config drive of %d bytes: want 1 to %d", len(drive), MaxConfigdriveBytes)
	}
	return drive, nil
}

func writeAt(path string, data []byte, off int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		return fmt.Errorf("writing the config drive: %w", err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	disks.RereadPartitions(f)
	return nil
}
