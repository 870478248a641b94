package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"metalplane/ramdisk/internal/protocol"
)

type bootParams struct {
	URL, Token, BootMAC string
	Debug               bool // mp.debug=1: on a fatal error exit, for /init's debug shell
}

var tokenRe = regexp.MustCompile(`^[A-Za-z0-9_-]{16,256}$`)

// parseCmdline reads mp.url, mp.token and the boot MAC from the kernel command line. The
// MAC comes from BOOTIF, as pxelinux ("01-aa-bb-cc-dd-ee-ff") or iPXE ("aa:bb:...") give it.
func parseCmdline(line string) (bootParams, error) {
	var p bootParams
	for _, f := range strings.Fields(line) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case protocol.ParamURL:
			p.URL = v
		case protocol.ParamToken:
			p.Token = v
		case "BOOTIF":
			p.BootMAC = parseMAC(v)
		case "mp.debug":
			p.Debug = v == "1"
		}
	}
	u, err := url.Parse(p.URL)
	if p.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return p, fmt.Errorf("kernel parameter %s must be the site agent's http(s) URL, got %q", protocol.ParamURL, p.URL)
	}
	if !tokenRe.MatchString(p.Token) {
		return p, fmt.Errorf("kernel parameter %s missing or malformed", protocol.ParamToken) // never print a token
	}
	return p, nil
}

var macRe = regexp.MustCompile(`^([0-9a-f]{2}:){5}[0-9a-f]{2}$`)

func parseMAC(v string) string {
	v = strings.ToLower(v)
	if len(v) == 20 && strings.HasPrefix(v, "01-") { // pxelinux: ARP type 1, dashes
		v = strings.ReplaceAll(v[3:], "-", ":")
	}
	if macRe.MatchString(v) {
		return v
	}
	return ""
}

// leaseMAC is the MAC of the interface /init got its DHCP lease on (it writes the name to
// /run/metalplane/boot-interface), for when the boot loader passed no BOOTIF.
func leaseMAC(root string) string {
	name, err := os.ReadFile(filepath.Join(root, "run/metalplane/boot-interface"))
	if err != nil {
		return ""
	}
	ifname := filepath.Base(strings.TrimSpace(string(name)))
	mac, err := os.ReadFile(filepath.Join(root, "sys/class/net", ifname, "address"))
	if err != nil || ifname == "." || ifname == "/" {
		return ""
	}
	return parseMAC(strings.TrimSpace(string(mac)))
}
