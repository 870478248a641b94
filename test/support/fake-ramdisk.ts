/**
 * A fake Metalplane ramdisk for tests: the protocol's client side (protocol/ramdisk.ts)
 * over HTTP to an agent's `/ramdisk/v1`, as `ramdisk/` speaks it. It reads `mp.url` and
 * `mp.token` from the kernel line of the iPXE script the agent wrote for its MAC (as the
 * real one reads /proc/cmdline), says hello, heartbeats, and answers each step it is given
 * with `run(step)`. Every message it sends and every answer is checked against the
 * protocol's schemas.
 *
 * `write(step)` is what the real ramdisk does for `write_image` and `write_configdrive`
 * short of the disk: it downloads the step's URL, checks the SHA-256 of the bytes served,
 * decompresses them (`raw+gzip`, and the config drive, gzipped always), and keeps what it
 * would have written in `written` (by step id), answering the result protocol/ramdisk.ts
 * gives those steps.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { expect } from 'vitest';
import {
  type Inventory,
  type RamdiskAnswer,
  type RamdiskRequest,
  type RamdiskStep,
  validateRamdiskAnswer,
  validateRamdiskRequest,
} from '../../protocol/ramdisk.ts';

export const FAKE_RAMDISK_MAC = '52:54:00:00:00:01';

/** An inventory as the ramdisk reports it: 4 CPUs, 8 GiB, one 20 GiB disk, one NIC (`mac`). */
export function fakeInventory(mac: string = FAKE_RAMDISK_MAC): Inventory {
  return {
    cpu: {
      model_name: 'QEMU Virtual CPU',
      frequency: '2400',
      count: 4,
      architecture: 'x86_64',
      flags: ['sse2'],
      socket_count: 1,
    },
    memory: { total: 8 * 1024 ** 3, physical_mb: 8192 },
    disks: [
      {
        name: '/dev/vda',
        model: null,
        size: 20 * 1024 ** 3,
        rotational: false,
        wwn: null,
        serial: 'abc',
        vendor: null,
        by_path: null,
      },
    ],
    interfaces: [
      {
        name: 'eth0',
        mac_address: mac,
        ipv4_address: '10.0.0.20',
        has_carrier: true,
        driver: 'virtio_net',
        speed_mbps: 1000,
      },
    ],
    system_vendor: { product_name: 'Standard PC', serial_number: null, manufacturer: 'QEMU' },
    boot: { current_boot_mode: 'bios', pxe_interface: mac },
    hostname: null,
  };
}

/** The `key=value` words of an iPXE script's kernel line (what the ramdisk reads from /proc/cmdline). */
export function kernelParamsOf(script: string): Map<string, string> | undefined {
  const line = script.split('\n').find((l) => l.startsWith('kernel '));
  if (!line) return undefined;
  const params = new Map<string, string>();
  for (const word of line
    .replace(/ \|\| goto retry$/, '')
    .split(' ')
    .slice(2)) {
    const eq = word.indexOf('=');
    if (eq > 0) params.set(word.slice(0, eq), word.slice(eq + 1));
  }
  return params;
}

export type StepOutcome =
  | { status: 'succeeded'; result: Record<string, unknown> }
  | { status: 'failed'; error: string };

/** The disk the fake writes onto (the inventory's only disk). */
export const FAKE_RAMDISK_DISK = '/dev/vda';

export class FakeRamdisk {
  session: string | undefined;
  readonly ran: RamdiskStep[] = [];
  /** What `write` would have written, by step id: the image, or the config drive, decompressed. */
  readonly written = new Map<string, Buffer>();
  #timer: NodeJS.Timeout | undefined;
  /** Steps given (a heartbeat repeats a step until its result is in: it runs once). */
  readonly #seen = new Set<string>();
  #stopped = false;
  /** What went wrong in the background heartbeats (before `stop`): a test may check it is empty. */
  readonly errors: unknown[] = [];
  readonly url: string;
  readonly run: (step: RamdiskStep) => StepOutcome | Promise<StepOutcome>;
  readonly bootMac: string;
  /**
   * The longest time between heartbeats (ms; the agent's interval when shorter). The
   * agent's ramdisk endpoint allows a remote address 10 requests a second (after a burst
   * of 40): the default (150 ms) stays under it however long the ramdisk lives (a flow's
   * cleanup after a failure keeps it alive for seconds); several at once beat slower.
   */
  readonly heartbeatMs: number;

  constructor(url: string, run: FakeRamdisk['run'], bootMac: string = FAKE_RAMDISK_MAC, heartbeatMs = 150) {
    this.url = url;
    this.run = run;
    this.bootMac = bootMac;
    this.heartbeatMs = heartbeatMs;
  }

  async send(message: RamdiskRequest): Promise<{ status: number; answer: RamdiskAnswer }> {
    expect(validateRamdiskRequest(message)).toBe(true);
    const res = await fetch(this.url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(message),
    });
    const answer = (await res.json()) as RamdiskAnswer;
    expect(validateRamdiskAnswer(answer)).toBe(true);
    return { status: res.status, answer };
  }

  /** Says hello with the boot's token; on success, heartbeats until `stop`. */
  async hello(token: string): Promise<number> {
    const { status, answer } = await this.send({
      v: 1,
      type: 'hello',
      token,
      version: 'fake-1',
      boot_mac: this.bootMac,
    });
    if (answer.type !== 'hello') return status;
    this.session = answer.session;
    // Heartbeats faster than asked, as a test can afford.
    this.#timer = setInterval(
      () =>
        void this.beat().catch((error: unknown) => {
          // A beat in flight when the test stopped it (or closed the agent) is no failure.
          if (!this.#stopped) this.errors.push(error);
        }),
      Math.min(this.heartbeatMs, answer.heartbeat_interval_s * 1000),
    );
    return status;
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  async beat(): Promise<void> {
    const session = this.session as string;
    const { answer } = await this.send({ v: 1, type: 'heartbeat', session });
    if (answer.type !== 'heartbeat') return;
    for (const step of answer.steps) {
      if (this.#seen.has(step.id)) continue;
      this.#seen.add(step.id);
      this.ran.push(step);
      await this.send({
        v: 1,
        type: 'log',
        session,
        lines: [
          {
            at: new Date().toISOString(),
            level: 'info',
            message: `running ${step.name}`,
            step: step.id,
            progress: 0,
          },
        ],
      });
      const outcome = await this.run(step);
      const { status } = await this.send({ v: 1, type: 'result', session, step: step.id, ...outcome });
      expect(status).toBe(200);
    }
  }

  /**
   * `write_image` / `write_configdrive` as the ramdisk runs them, onto `written` instead of
   * a disk: download, SHA-256 of the bytes served, gunzip (raw+gzip; a config drive always).
   */
  async write(step: RamdiskStep): Promise<StepOutcome> {
    if (step.name !== 'write_image' && step.name !== 'write_configdrive') {
      return { status: 'failed', error: `write: not a write step: ${step.name}` };
    }
    const args = step.args as { url: string; sha256: string; format?: 'raw' | 'raw+gzip' };
    const started = Date.now();
    const res = await fetch(args.url);
    if (res.status !== 200) return { status: 'failed', error: `download: HTTP ${res.status}` };
    const served = Buffer.from(await res.arrayBuffer());
    if (Number(res.headers.get('content-length')) !== served.length) {
      return { status: 'failed', error: 'download: short read' };
    }
    const digest = createHash('sha256').update(served).digest('hex');
    if (digest !== args.sha256) {
      return { status: 'failed', error: `sha256 mismatch: got ${digest}, expected ${args.sha256}` };
    }
    let data: Buffer;
    try {
      const gzipped = step.name === 'write_configdrive' || args.format === 'raw+gzip';
      data = gzipped ? gunzipSync(served, { maxOutputLength: 64 * 1024 * 1024 }) : served;
    } catch (error) {
      return { status: 'failed', error: `gunzip: ${(error as Error).message}` };
    }
    this.written.set(step.id, data);
    if (step.name === 'write_configdrive') {
      return { status: 'succeeded', result: { disk: FAKE_RAMDISK_DISK, partition: `${FAKE_RAMDISK_DISK}2` } };
    }
    const seconds = (Date.now() - started) / 1000;
    return { status: 'succeeded', result: { disk: FAKE_RAMDISK_DISK, bytes_written: data.length, seconds } };
  }
}

/**
 * The fallback script `boot.ipxe` chains when no NIC of the machine has a script of its own
 * (discovery's, when the site's discovery is on): its URL, or undefined without one.
 */
export function entryFallbackUrlOf(entryScript: string): string | undefined {
  const line = entryScript.split('\n').find((l) => /^chain \S+ \|\| goto no_config$/.test(l));
  return line?.split(' ')[1];
}

/**
 * The `openstack/latest/*` files (`names`) of a config drive ISO the fake ramdisk wrote,
 * read with xorriso.
 */
export function latestFiles(iso: Buffer, names: readonly string[]): Map<string, string> {
  const work = mkdtempSync(join(tmpdir(), 'configdrive-iso-'));
  try {
    writeFileSync(join(work, 'cd.iso'), iso);
    execFileSync(
      'xorriso',
      ['-osirrox', 'on', '-indev', join(work, 'cd.iso'), '-extract', '/', join(work, 'x')],
      {
        stdio: 'ignore',
      },
    );
    return new Map(names.map((n) => [n, readFileSync(join(work, 'x/openstack/latest', n), 'utf8')]));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
