package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"metalplane/ramdisk/internal/protocol"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func disk(t *testing.T, size int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(p, bytes.Repeat([]byte{0xEE}, size), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func serve(t *testing.T, body []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/short": // promises more than it sends
			w.Header().Set("Content-Length", "99999999")
			_, _ = w.Write(body)
		case "/missing":
			http.NotFound(w, r)
		default:
			_, _ = w.Write(body)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func image(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
	return b
}

func TestWriteImage(t *testing.T) {
	img := image(3<<20 + 5)
	for _, format := range []string{"raw", "raw+gzip"} {
		served := img
		if format == "raw+gzip" {
			served = gz(img)
		}
		srv := serve(t, served)
		p := disk(t, 8<<20)
		var calls int
		w, err := WriteImage(context.Background(), p, protocol.WriteImageArgs{URL: srv.URL + "/i", SHA256: sum(served), Format: format},
			func(done, total int64) { calls++ })
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		b, _ := os.ReadFile(p)
		if w.Bytes != int64(len(img)) || !bytes.Equal(b[:len(img)], img) || len(b) != 8<<20 || b[len(img)] != 0xEE || calls == 0 {
			t.Errorf("%s: wrote %d bytes, %d progress calls", format, w.Bytes, calls)
		}
	}
}

func TestWriteImageFailuresWipeTheDisk(t *testing.T) {
	img := image(2 << 20)
	srv := serve(t, img)
	for name, c := range map[string]struct {
		args protocol.WriteImageArgs
		size int
		want string
	}{
		"bad hash":       {protocol.WriteImageArgs{URL: srv.URL + "/i", SHA256: strings.Repeat("0", 64), Format: "raw"}, 4 << 20, "checksum mismatch"},
		"short read":     {protocol.WriteImageArgs{URL: srv.URL + "/short", SHA256: sum(img), Format: "raw"}, 4 << 20, "unexpected EOF"},
		"not gzip":       {protocol.WriteImageArgs{URL: srv.URL + "/i", SHA256: sum(img), Format: "raw+gzip"}, 4 << 20, "not gzip"},
		"disk too small": {protocol.WriteImageArgs{URL: srv.URL + "/i", SHA256: sum(img), Format: "raw"}, 1<<20 + 10, "larger than the disk"},
	} {
		p := disk(t, c.size)
		_, err := WriteImage(context.Background(), p, c.args, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", name, err)
			continue
		}
		b, _ := os.ReadFile(p)
		if bytes.Count(b[:1<<20], []byte{0}) != 1<<20 || len(b) != c.size {
			t.Errorf("%s: first MiB not wiped", name)
		}
	}
	p := disk(t, 4<<20)
	for _, url := range []string{srv.URL + "/missing", "http://127.0.0.1:1/x"} {
		_, err := WriteImage(context.Background(), p, protocol.WriteImageArgs{URL: url, SHA256: sum(img), Format: "raw"}, nil)
		if err == nil {
			t.Errorf("%s: want an error", url)
		}
	}
	b, _ := os.ReadFile(p)
	if b[0] != 0xEE {
		t.Error("a download that never started must leave the disk alone")
	}
}

func TestPartitionName(t *testing.T) {
	for _, c := range [][3]string{{"/dev/sda", "3", "/dev/sda3"}, {"/dev/nvme0n1", "p2", "/dev/nvme0n1p2"}, {"/dev/vda", "p1", "/dev/vda1"}} {
		if got := partitionName(c[0], c[1]); got != c[2] {
			t.Errorf("%v: %s", c, got)
		}
	}
}

// The real sfdisk on a file: an MBR and a GPT disk image each get a config-2 partition.
func TestWriteConfigdriveWithSfdisk(t *testing.T) {
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Skip("sfdisk not installed (util-linux fdisk package)")
	}
	drive := append([]byte("CD001 config-2 "), image(100_000)...)
	served := gz(drive)
	srv := serve(t, served)
	for _, label := range []string{"dos", "gpt"} {
		p := disk(t, 64<<20)
		// An image made for a 32 MiB disk: one partition, for GPT its backup header at 32 MiB.
		small := disk(t, 32<<20)
		if _, err := Run(context.Background(), []byte("label: "+label+"\nsize=20MiB\n"), "sfdisk", "--no-reread", "--no-tell-kernel", small); err != nil {
			t.Fatal(err)
		}
		head, _ := os.ReadFile(small)
		f, _ := os.OpenFile(p, os.O_WRONLY, 0)
		_, _ = f.WriteAt(head, 0)
		f.Close()

		part, err := WriteConfigdrive(context.Background(), p, "/dev/sda", protocol.WriteConfigdriveArgs{URL: srv.URL + "/cd", SHA256: sum(served)})
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		if part != "/dev/sda2" {
			t.Errorf("%s: partition %s", label, part)
		}
		tab, err := readTable(context.Background(), p)
		if err != nil || len(tab.PartitionTable.Partitions) != 2 {
			t.Fatalf("%s: %+v %v", label, tab, err)
		}
		start := tab.PartitionTable.Partitions[1].Start * tab.PartitionTable.SectorSize
		b, _ := os.ReadFile(p)
		if !bytes.Equal(b[start:start+int64(len(drive))], drive) || len(b) != 64<<20 {
			t.Errorf("%s: config drive not at the partition's start", label)
		}
		if label == "gpt" {
			out, _ := Run(context.Background(), nil, "sfdisk", "--part-label", p, "2")
			if strings.TrimSpace(string(out)) != "config-2" {
				t.Errorf("gpt name %q", out)
			}
		}
	}
}

func TestWriteConfigdriveRefusals(t *testing.T) {
	drive := gz([]byte("config"))
	srv := serve(t, drive)
	p := disk(t, 8<<20)
	if _, err := WriteConfigdrive(context.Background(), p, "/dev/sda", protocol.WriteConfigdriveArgs{URL: srv.URL, SHA256: strings.Repeat("1", 64)}); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("bad hash: %v", err)
	}
	plain := serve(t, []byte("not gzip"))
	if _, err := WriteConfigdrive(context.Background(), p, "/dev/sda", protocol.WriteConfigdriveArgs{URL: plain.URL, SHA256: sum([]byte("not gzip"))}); err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Errorf("not gzip: %v", err)
	}
	if _, err := exec.LookPath("sfdisk"); err == nil {
		if _, err := WriteConfigdrive(context.Background(), p, "/dev/sda", protocol.WriteConfigdriveArgs{URL: srv.URL, SHA256: sum(drive)}); err == nil {
			t.Error("a disk without a partition table must fail")
		}
	}
}
