// Command metalplane-ramdisk is the deploy ramdisk's agent: started by the initramfs'
// /init (as its child; it never exits unless mp.debug=1, and copes with being PID 1), it gets steps from the site agent
// (protocol/ramdisk.ts) and runs them. See ramdisk/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"metalplane/ramdisk/internal/agentclient"
	"metalplane/ramdisk/internal/rescue"
	"metalplane/ramdisk/internal/runner"
)

// version is set at build time with -ldflags '-X main.version=...'.
var version = "dev"

func main() {
	cmdline := flag.String("cmdline", "/proc/cmdline", "kernel command line to read mp.url and mp.token from")
	root := flag.String("root", "/", "root of /proc, /sys, /dev and /etc (tests use a fake tree)")
	noPower := flag.Bool("no-power", false, "exit instead of rebooting or powering off (for trying it out)")
	flag.Parse()

	power := rescue.Power
	if *noPower {
		power = func(action string) error { fmt.Fprintf(os.Stderr, "would %s\n", action); os.Exit(0); return nil }
	}
	debug, err := run(*cmdline, *root, power)
	if debug && os.Getpid() != 1 {
		// mp.debug=1: /init (our parent) opens a shell on the console to look around.
		fmt.Fprintf(os.Stderr, "metalplane-ramdisk: %v; exiting (mp.debug=1)\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "metalplane-ramdisk: %v; powering off\n", err)
	// Nothing more can happen without the site agent: a machine left on would idle on the
	// provisioning network forever. The control plane sees it off and retries the boot.
	if perr := power("poweroff"); perr != nil {
		fmt.Fprintf(os.Stderr, "metalplane-ramdisk: poweroff failed: %v\n", perr)
	}
	for { // PID 1 must not exit (the kernel would panic)
		time.Sleep(time.Hour)
	}
}

func run(cmdlinePath, root string, power func(string) error) (debug bool, err error) {
	raw, err := os.ReadFile(cmdlinePath)
	if err != nil {
		return false, err
	}
	params, err := parseCmdline(string(raw))
	if err != nil {
		return params.Debug, err
	}
	if params.BootMAC == "" {
		params.BootMAC = leaseMAC(root)
	}
	fmt.Fprintf(os.Stderr, "metalplane-ramdisk %s: site agent %s, boot MAC %q\n", version, params.URL, params.BootMAC)
	r := runner.New(runner.Config{
		Client: agentclient.New(params.URL), Token: params.Token, Version: version,
		BootMAC: params.BootMAC, Root: root, Power: power, Console: os.Stderr,
	})
	if err := r.Run(context.Background()); err != nil {
		return params.Debug, err
	}
	return params.Debug, fmt.Errorf("the power step returned")
}
