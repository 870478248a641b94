package disks

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// Block device ioctls (linux/fs.h), the same on amd64 and arm64.
const (
	blkGetSize64 = 0x80081272 // _IOR(0x12, 114, size_t)
	blkDiscard   = 0x1277     // _IO(0x12, 119)
	blkRRPart    = 0x125f     // _IO(0x12, 95)
)

// IsBlockDevice tells a block device from a regular file (tests use files).
func IsBlockDevice(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0
}

// Size is a device's size in bytes: BLKGETSIZE64 for a block device, stat for a file.
func Size(f *os.File) (int64, error) {
	if !IsBlockDevice(f) {
		st, err := f.Stat()
		if err != nil {
			return 0, err
		}
		return st.Size(), nil
	}
	var size uint64
	if err := ioctl(f, blkGetSize64, uintptr(unsafe.Pointer(&size))); err != nil {
		return 0, fmt.Errorf("%s: BLKGETSIZE64: %w", f.Name(), err)
	}
	return int64(size), nil
}

// discard asks the device to discard [0, size) (TRIM/UNMAP/deallocate).
func discard(f *os.File, size int64) error {
	rng := [2]uint64{0, uint64(size)}
	return ioctl(f, blkDiscard, uintptr(unsafe.Pointer(&rng)))
}

// RereadPartitions tells the kernel to read the partition table again; a no-op on a file.
func RereadPartitions(f *os.File) {
	if IsBlockDevice(f) {
		_ = ioctl(f, blkRRPart, 0) // busy or unsupported: the next boot reads it anyway
	}
}

func ioctl(f *os.File, req, arg uintptr) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), req, arg); errno != 0 {
		return errno
	}
	return nil
}
