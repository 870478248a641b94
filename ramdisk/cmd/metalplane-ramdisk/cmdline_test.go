package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCmdline(t *testing.T) {
	p, err := parseCmdline("console=ttyS0 mp.url=http://10.0.0.1:8080/ramdisk/v1 mp.token=tok_0123456789abcdef BOOTIF=01-52-54-00-AB-34-56 quiet\n")
	if err != nil || p.URL != "http://10.0.0.1:8080/ramdisk/v1" || p.Token != "tok_0123456789abcdef" || p.BootMAC != "52:54:00:ab:34:56" {
		t.Errorf("%+v %v", p, err)
	}
	p, _ = parseCmdline("mp.url=https://a/r mp.token=tok_0123456789abcdef BOOTIF=52:54:00:12:34:56")
	if p.BootMAC != "52:54:00:12:34:56" {
		t.Errorf("ipxe BOOTIF: %q", p.BootMAC)
	}
	p, _ = parseCmdline("mp.url=https://a/r mp.token=tok_0123456789abcdef BOOTIF=garbage")
	if p.BootMAC != "" {
		t.Errorf("bad BOOTIF: %q", p.BootMAC)
	}
	for _, bad := range []string{
		"mp.token=tok_0123456789abcdef",
		"mp.url=ftp://a/r mp.token=tok_0123456789abcdef",
		"mp.url=http:///r mp.token=tok_0123456789abcdef",
		"mp.url=http://a/r",
		"mp.url=http://a/r mp.token=short",
		"mp.url=http://a/r mp.token=tok_0123456789abcdef;rm",
	} {
		_, err := parseCmdline(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "tok_") {
			t.Errorf("error leaks the token: %v", err)
		}
	}
}

func TestLeaseMACAndDebug(t *testing.T) {
	root := t.TempDir()
	if leaseMAC(root) != "" {
		t.Error("no lease file: no MAC")
	}
	_ = os.MkdirAll(filepath.Join(root, "run/metalplane"), 0o755)
	_ = os.MkdirAll(filepath.Join(root, "sys/class/net/eth1"), 0o755)
	_ = os.WriteFile(filepath.Join(root, "run/metalplane/boot-interface"), []byte("eth1\n"), 0o644)
	_ = os.WriteFile(filepath.Join(root, "sys/class/net/eth1/address"), []byte("52:54:00:AA:BB:CC\n"), 0o644)
	if got := leaseMAC(root); got != "52:54:00:aa:bb:cc" {
		t.Errorf("lease MAC %q", got)
	}
	p, _ := parseCmdline("mp.debug=1 mp.url=http://a/r")
	if !p.Debug {
		t.Error("mp.debug=1 must be seen even when other parameters are bad")
	}
}
