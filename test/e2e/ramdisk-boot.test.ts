/**
 * End to end: `scripts/build-ramdisk.ts` builds the deploy ramdisk (Debian kernel + our
 * initramfs) into a temporary cache, qemu boots it directly (-kernel/-initrd, TCG, e1000 on
 * slirp, where 10.0.2.2 is the host's 127.0.0.1), `/init` loads the modules, gets a DHCP
 * lease from slirp and runs the ramdisk program, which says hello to a fake site agent here
 * (protocol/ramdisk.ts, every request checked with `validateRamdiskRequest`) and heartbeats.
 *
 * The program is the real one (`go build ramdisk/cmd/metalplane-ramdisk`) once it exists,
 * else a stub built from the Go source below that does what the real one does first.
 * Needs Go, qemu-system-x86, linux-image-amd64, busybox-static, fdisk
 * (scripts/debian-packages.txt). Recipe and timings: ../shared/lab/disk/README.md.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RamdiskAnswer, type RamdiskRequest, validateRamdiskRequest } from '../../protocol/ramdisk.ts';
import { type BuildResult, buildRamdisk, findGo, hasProgramSource } from '../../scripts/build-ramdisk.ts';

const run = promisify(execFile);
const TOKEN = 'tok-e2e-ramdisk-5c1d';
const SESSION = 'sess-e2e-ramdisk-9a0b';
/** TCG on 2 shared cores: the lab booted to its marker in 15-20 s. */
const BOOT_TIMEOUT_MS = 150_000;

const STUB_GO = `// Stand-in for ramdisk/cmd/metalplane-ramdisk (test/e2e/ramdisk-boot.test.ts): hello, one heartbeat.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

func post(url string, body any) (map[string]any, error) {
	b, _ := json.Marshal(body)
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return out, fmt.Errorf("status %d", resp.StatusCode)
	}
	return out, nil
}

func main() {
	raw, _ := os.ReadFile("/proc/cmdline")
	params := map[string]string{}
	for _, w := range strings.Fields(string(raw)) {
		if k, v, ok := strings.Cut(w, "="); ok {
			params[k] = v
		}
	}
	url := params["mp.url"]
	var hello map[string]any
	var err error
	for i := 0; i < 10; i++ {
		hello, err = post(url, map[string]any{"v": 1, "type": "hello", "token": params["mp.token"], "version": "stub", "boot_mac": nil})
		if err == nil {
			break
		}
		fmt.Println("stub: hello failed:", err)
		time.Sleep(time.Second)
	}
	if err != nil {
		os.Exit(1)
	}
	fmt.Println("stub: hello ->", hello)
	hb, err := post(url, map[string]any{"v": 1, "type": "heartbeat", "session": hello["session"]})
	fmt.Println("stub: heartbeat ->", hb, err)
}
`;

let dir: string;
let build: BuildResult;
let server: Server;
let port: number;
let qemu: ChildProcess | undefined;
const requests: Array<{ at: number; body: unknown; valid: boolean }> = [];
const waiters: Array<() => void> = [];

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** A fake site agent: hello → a session, heartbeat → no steps; everything recorded. */
function fakeAgent(): Server {
  return createServer(async (req, res) => {
    const send = (status: number, answer: RamdiskAnswer) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    };
    const text = await readBody(req);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    const valid = req.method === 'POST' && req.url === '/ramdisk/v1' && validateRamdiskRequest(body);
    requests.push({ at: performance.now(), body, valid });
    for (const wake of waiters.splice(0)) wake();
    if (!valid) return send(400, { v: 1, type: 'error', error: 'bad message' });
    const request = body as RamdiskRequest;
    if (request.type === 'hello') {
      if (request.token !== TOKEN) return send(401, { v: 1, type: 'error', error: 'unknown token' });
      return send(200, { v: 1, type: 'hello', session: SESSION, heartbeat_interval_s: 5 });
    }
    if (request.type === 'heartbeat') {
      if (request.session !== SESSION) return send(401, { v: 1, type: 'error', error: 'unknown session' });
      return send(200, { v: 1, type: 'heartbeat', steps: [] });
    }
    return send(200, { v: 1, type: 'ok' });
  });
}

/** Resolves when `done()` holds (checked on every request), rejects when qemu ends first or on timeout. */
function waitFor(done: () => boolean, vm: ChildProcess, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      vm.off('exit', onExit);
    };
    const check = () => {
      if (done()) {
        cleanup();
        resolve();
      } else waiters.push(check);
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new Error(`qemu ended (code ${code}, signal ${signal}) before the ramdisk heartbeat`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no heartbeat within ${timeoutMs} ms`));
    }, timeoutMs);
    vm.on('exit', onExit);
    check();
  });
}

describe('deploy ramdisk boots in qemu and speaks the ramdisk protocol', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'metalplane-ramdisk-e2e-'));
    let program: string | undefined;
    if (!hasProgramSource()) {
      const go = findGo();
      if (!go) throw new Error('Go is needed to build the ramdisk program (PATH or /usr/local/go/bin/go)');
      const stubDir = join(dir, 'stub');
      mkdirSync(stubDir);
      writeFileSync(join(stubDir, 'go.mod'), 'module stub\n\ngo 1.21\n');
      writeFileSync(join(stubDir, 'main.go'), STUB_GO);
      program = join(dir, 'metalplane-ramdisk-stub');
      await run(go, ['build', '-trimpath', '-ldflags=-s -w', '-o', program, '.'], {
        cwd: stubDir,
        env: { ...process.env, CGO_ENABLED: '0', GOOS: 'linux', GOARCH: 'amd64', GOTOOLCHAIN: 'local' },
      });
    }
    build = await buildRamdisk({ cacheDir: join(dir, 'cache'), program });
    server = fakeAgent();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  }, 300_000);

  afterAll(async () => {
    if (qemu?.pid !== undefined && qemu.exitCode === null && qemu.signalCode === null) {
      const exited = new Promise((resolve) => qemu?.once('exit', resolve));
      process.kill(qemu.pid, 'SIGTERM');
      await exited;
    }
    if (server) await new Promise((resolve) => server.close(resolve));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(
    'hello with the boot token, then a heartbeat on the session',
    async () => {
      const serial = join(dir, 'serial.log');
      const started = performance.now();
      // `timeout` is the safety net if this process dies; the test itself kills it by PID.
      qemu = spawn(
        'timeout',
        [
          '-k',
          '5',
          String(Math.ceil(BOOT_TIMEOUT_MS / 1000) + 30),
          'qemu-system-x86_64',
          '-accel',
          'tcg',
          '-machine',
          'pc',
          '-m',
          '512',
          '-no-reboot',
          '-display',
          'none',
          '-monitor',
          'none',
          '-nodefaults',
          '-serial',
          `file:${serial}`,
          '-kernel',
          join(build.dir, 'vmlinuz'),
          '-initrd',
          join(build.dir, 'initramfs.img'),
          '-append',
          `console=ttyS0 panic=-1 mp.url=http://10.0.2.2:${port}/ramdisk/v1 mp.token=${TOKEN}`,
          '-netdev',
          'user,id=n0',
          '-device',
          'e1000,netdev=n0,mac=52:54:00:12:34:77',
        ],
        { stdio: ['ignore', 'inherit', 'inherit'] },
      );
      const ofType = (type: string) =>
        requests.filter((r) => (r.body as { type?: string } | null)?.type === type && r.valid);
      try {
        await waitFor(() => ofType('heartbeat').length > 0, qemu, BOOT_TIMEOUT_MS);
      } catch (error) {
        const log = existsSync(serial) ? readFileSync(serial, 'utf8') : '(no serial log)';
        throw new Error(`${(error as Error).message}\n--- serial console (tail) ---\n${log.slice(-6000)}`);
      }
      const hello = ofType('hello')[0]!;
      const heartbeat = ofType('heartbeat')[0]!;
      console.log(
        `ramdisk: hello after ${((hello.at - started) / 1000).toFixed(1)} s, first heartbeat after ${((heartbeat.at - started) / 1000).toFixed(1)} s (qemu start → heartbeat, TCG); ` +
          `initramfs ${(build.files.find((f) => f.name === 'initramfs.img')!.size / 1e6).toFixed(2)} MB ${build.manifest.compression}`,
      );
      expect(requests.filter((r) => !r.valid)).toEqual([]);
      expect(hello.body).toMatchObject({ v: 1, type: 'hello', token: TOKEN });
      expect(heartbeat.body).toEqual({ v: 1, type: 'heartbeat', session: SESSION });
      expect(heartbeat.at).toBeGreaterThan(hello.at);
      const console_ = readFileSync(serial, 'utf8');
      expect(console_).toMatch(/metalplane-init: network up: eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2/);
    },
    BOOT_TIMEOUT_MS + 30_000,
  );
});
