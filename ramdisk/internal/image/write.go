package image

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"metalplane/ramdisk/internal/disks"
	"metalplane/ramdisk/internal/protocol"
)

// Progress is told the bytes served so far and the total (-1 when unknown).
type Progress func(done, total int64)

// Written is what a write reports.
type Written struct {
	Bytes   int64
	Seconds float64
}

// WriteImage streams the image at args.URL onto the disk at path, hashing the bytes served
// and gunzipping them for raw+gzip. On any failure after writing began (bad hash, short or
// broken download, image larger than the disk) it zeroes the disk's first MiB so that a
// partial image never boots, and fails.
func WriteImage(ctx context.Context, path string, args protocol.WriteImageArgs, progress Progress) (Written, error) {
	start := time.Now()
	if args.Format != "raw" && args.Format != "raw+gzip" {
		return Written{}, fmt.Errorf("unknown image format %q", args.Format)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0) // never O_TRUNC: a file stands in for a disk
	if err != nil {
		return Written{}, fmt.Errorf("opening disk: %w", err)
	}
	defer f.Close()
	size, err := disks.Size(f)
	if err != nil {
		return Written{}, err
	}
	body, total, err := get(ctx, args.URL)
	if err != nil {
		return Written{}, err
	}
	defer body.Close()

	hash := sha256.New()
	served := &counter{r: io.TeeReader(body, hash), total: total, progress: progress}
	var src io.Reader = served
	if args.Format == "raw+gzip" {
		zr, err := gzip.NewReader(served)
		if err != nil {
			return Written{}, fail(f, fmt.Errorf("image is not gzip: %w", err))
		}
		src = zr
	}
	n, err := io.Copy(&offsetWriter{f: f, size: size}, src)
	if err == nil {
		_, err = io.Copy(io.Discard, served) // hash what the decompressor left (trailing bytes)
	}
	if err != nil {
		return Written{}, fail(f, fmt.Errorf("writing image: %w", err))
	}
	if got := hex.EncodeToString(hash.Sum(nil)); got != args.SHA256 {
		return Written{}, fail(f, fmt.Errorf("image checksum mismatch: sha256 %s, expected %s (%d bytes served)", got, args.SHA256, served.n))
	}
	if err := f.Sync(); err != nil {
		return Written{}, fail(f, fmt.Errorf("sync: %w", err))
	}
	disks.RereadPartitions(f)
	return Written{Bytes: n, Seconds: time.Since(start).Seconds()}, nil
}

// fail wipes the start of the disk (partition table, boot sector) and returns err.
func fail(f *os.File, err error) error {
	if _, werr := f.WriteAt(make([]byte, disks.MetadataBytes), 0); werr != nil {
		return errors.Join(err, fmt.Errorf("also failed to wipe the partial image: %w", werr))
	}
	_ = f.Sync()
	return err
}

// offsetWriter writes sequentially with WriteAt, never past the disk's size (a file
// would grow; a device would fail with ENOSPC, less clearly).
type offsetWriter struct {
	f         *os.File
	off, size int64
}

func (w *offsetWriter) Write(p []byte) (int, error) {
	if w.off+int64(len(p)) > w.size {
		return 0, fmt.Errorf("image larger than the disk (%d bytes)", w.size)
	}
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	return n, err
}

// counter counts the bytes served and reports progress every 2 seconds.
type counter struct {
	r        io.Reader
	n, total int64
	progress Progress
	last     time.Time
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && (time.Since(c.last) >= 2*time.Second || (err == io.EOF && c.n > 0)) {
		c.last = time.Now()
		c.progress(c.n, c.total)
	}
	return n, err
}
