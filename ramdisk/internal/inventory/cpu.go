package inventory

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"

	"metalplane/ramdisk/internal/protocol"
)

// unameMachine maps GOARCH to uname -m, for kernels without /proc/sys/kernel/arch.
var unameMachine = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}

func readCPU(root string) (protocol.CPU, error) {
	f, err := os.Open(join(root, "proc/cpuinfo"))
	if err != nil {
		return protocol.CPU{}, fmt.Errorf("cpu: %w", err)
	}
	defer f.Close()
	cpu := protocol.CPU{Flags: []string{}}
	sockets := map[string]bool{}
	var model, mhz string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024) // flags lines are long
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch key {
		case "processor":
			cpu.Count++
		case "model name":
			if model == "" {
				model = value
			}
		case "cpu MHz":
			if mhz == "" {
				mhz = value
			}
		case "flags", "Features": // x86, arm
			if len(cpu.Flags) == 0 {
				cpu.Flags = strings.Fields(value)
			}
		case "physical id":
			sockets[value] = true
		}
	}
	if err := sc.Err(); err != nil {
		return protocol.CPU{}, fmt.Errorf("cpu: %w", err)
	}
	cpu.ModelName, cpu.Frequency = optional(model), optional(mhz)
	if len(sockets) > 0 {
		n := len(sockets)
		cpu.SocketCount = &n
	}
	cpu.Architecture = readTrim(join(root, "proc/sys/kernel/arch"))
	if cpu.Architecture == "" {
		cpu.Architecture = unameMachine[runtime.GOARCH]
	}
	return cpu, nil
}
