package disks

import (
	"fmt"
	"os"
	"time"
)

// MetadataBytes is how much is zeroed at each end of a disk by EraseMetadata: it covers
// the MBR, both GPT copies (the backup is in the last 33 sectors), and the signatures of
// filesystems, LVM, mdraid (0.90 and 1.0 are at the end) and ZFS labels (first and last
// 512 KiB), which is what IPA's destroy_disk_metadata removes with wipefs and sgdisk.
const MetadataBytes = 1 << 20

const chunk = 4 << 20

// Progress receives bytes done and the total while a long erase runs.
type Progress func(done, total int64)

// EraseMetadata zeroes the first and last MiB of a disk (or file), so that no partition
// table, filesystem or RAID signature survives, and syncs.
func EraseMetadata(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("erase metadata: %w", err)
	}
	defer f.Close()
	size, err := Size(f)
	if err != nil {
		return fmt.Errorf("erase metadata: %w", err)
	}
	if err := zeroRange(f, 0, min(MetadataBytes, size), nil); err != nil {
		return fmt.Errorf("erase metadata of %s: %w", path, err)
	}
	if tail := max(size-MetadataBytes, MetadataBytes); tail < size {
		if err := zeroRange(f, tail, size-tail, nil); err != nil {
			return fmt.Errorf("erase metadata of %s: %w", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("erase metadata of %s: sync: %w", path, err)
	}
	RereadPartitions(f)
	return nil
}

// Erase erases a whole disk: a discard of the whole device where the device supports it
// (seconds on SSDs and NVMe), otherwise a full overwrite with zeros. Discarded blocks may
// still read back old data on some devices, so the metadata is zeroed after a discard as
// well. It returns the method used ("discard" or "zero").
func Erase(path string, progress Progress) (string, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return "", fmt.Errorf("erase: %w", err)
	}
	defer f.Close()
	size, err := Size(f)
	if err != nil {
		return "", fmt.Errorf("erase: %w", err)
	}
	if IsBlockDevice(f) && discard(f, size) == nil {
		f.Close()
		if progress != nil {
			progress(size, size)
		}
		return "discard", EraseMetadata(path)
	}
	if err := zeroRange(f, 0, size, progress); err != nil {
		return "", fmt.Errorf("erase %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("erase %s: sync: %w", path, err)
	}
	RereadPartitions(f)
	return "zero", nil
}

// zeroRange writes zeros over [off, off+n), calling progress at most every 2 seconds.
func zeroRange(f *os.File, off, n int64, progress Progress) error {
	buf := make([]byte, min(chunk, n))
	last := time.Now()
	for done := int64(0); done < n; {
		w := min(int64(len(buf)), n-done)
		if _, err := f.WriteAt(buf[:w], off+done); err != nil {
			return err
		}
		done += w
		if progress != nil && (done == n || time.Since(last) >= 2*time.Second) {
			progress(done, n)
			last = time.Now()
		}
	}
	return nil
}
